// @ts-check
/**
 * The learner's live page. What it shows follows the server's word, never the tracks (every m-line has a
 * track, published or not): the room channel's `media` state (docs/channel.md) says whether the lecture is
 * waiting, live, reconnecting or ended, which of the expert's camera and screen are published and who is
 * on stage. The screen is large and the camera small when both are published; either alone is large. A
 * feed is shown only once it has a fresh frame, so a share that starts or stops never shows black or a
 * frozen picture. One status line says where the lecture is; after the end, the replay link once it
 * exists. Also chat, questions, raise hand, presence checks, the stage when promoted, and HLS when the
 * room is full.
 */
import { api, ApiError } from "../api.js";
import { addChat, mediaGrant, mediaToken, onSubmitText, renderQuestions, sessionIdFromPath, smallButton, StageTiles } from "../live-ui.js";
import { AttendanceReporter } from "../attendance.js";
import { CLOSE_REPLACED, CLOSE_REVOKED, RoomChannel } from "../room.js";
import { $, requireLogin, say, sayError } from "../ui.js";
import { MediaError, publish, watch } from "../whip.js";

/** @typedef {"camera" | "screen"} Feed */
/** @typedef {import("../room.js").MediaState} Media */
/** @typedef {Media["status"] | "loading" | "not_found" | "forbidden"} Status */

const sessionId = sessionIdFromPath();
/** @type {Record<Feed, HTMLVideoElement>} */
const feeds = {
  camera: /** @type {HTMLVideoElement} */ ($("#camera-video")),
  screen: /** @type {HTMLVideoElement} */ ($("#screen-video")),
};
const FEEDS = /** @type {const} */ (["camera", "screen"]);
const expertAudio = /** @type {HTMLAudioElement} */ ($("#expert-audio"));
const handBtn = /** @type {HTMLButtonElement} */ ($("#hand"));
const unmuteBtn = /** @type {HTMLButtonElement} */ ($("#unmute"));
const replayLink = /** @type {HTMLAnchorElement} */ ($("#replay-link"));
const courseLink = /** @type {HTMLAnchorElement} */ ($("#course-link"));
const channel = new RoomChannel();
const attendance = new AttendanceReporter(channel, sessionId, $("#counting"));
const tiles = new StageTiles($("#stage-videos"));
tiles.onBlocked = () => { unmuteBtn.hidden = false; };

const STATUS_TEXT = {
  loading: "正在进入直播间…",
  waiting: "等待讲师开播",
  live: "直播中",
  reconnecting: "讲师连接中断，正在等待重新连接…",
  ended: "直播已结束",
  not_found: "没有找到该课次",
  forbidden: "无权观看",
};

/** What the server last said is published. @type {Media} */
let media = { status: "waiting", expert: { camera: false, screen: false, audio: false }, stage: [], grace_ends_at: null };
/**
 * Per feed, while it is published: its frame count when it was (re)published. It is shown once it has
 * decoded past that count, i.e. has a picture of the current publication. null: not published.
 * @type {Record<Feed, number | null>}
 */
const since = { camera: null, screen: null };
/** @type {number | undefined} polls the frame counts while a published feed has no fresh picture yet */
let freshTimer;
/** @type {any} GET /api/sessions/{id} */
let session = null;
/** @type {import("../whip.js").MediaResource | null} */
let viewing = null;
let connecting = false;
/** @type {{ destroy(): void } | null} */
let hls = null;
let hlsMode = false;
/** The media sequence number of the HLS segment playing (hls.js FRAG_CHANGED), for the HLS heartbeats. */
let hlsFragment = 0;
/** @type {import("../whip.js").MediaResource | null} */
let onStage = null;
/** @type {MediaStream | null} */
let myMedia = null;
let handRaised = false;
let ended = false;
/** STUN/TURN servers from the last WHEP grant; a promoted speaker publishes through them too. @type {RTCIceServer[]} */
let iceServers = [];
/** @type {number | undefined} */
let retryTimer;
/** @type {number | undefined} */
let checkTimer;
let myPersonId = 0;
/** person id -> name, from the room channel */
const people = new Map();
/** the message shown while the room channel reconnects (cleared when it is back) */
const CHANNEL_LOST = "与直播间的连接中断，正在重新连接…";

/** @param {Status} status */
function showStatus(status) {
  $("#state").textContent = status === "live" && hlsMode ? "直播中（直播流，有数秒延迟）" : STATUS_TEXT[status];
  /** @type {HTMLElement} */ ($("#state").parentElement).dataset.status = status;
}

/** Offer the course page beside the status (to enroll, or to find the course's other sessions). */
function showCourseLink() {
  if (!session) return;
  courseLink.href = `/courses/${session.course_id}`;
  courseLink.hidden = false;
}

/** @param {HTMLVideoElement} video */
function frames(video) {
  return video.getVideoPlaybackQuality().totalVideoFrames;
}

/** @param {Feed} feed */
function published(feed) {
  return media.status === "live" && media.expert[feed];
}

/** @param {Feed} feed */
function fresh(feed) {
  const mark = since[feed];
  return published(feed) && mark !== null && frames(feeds[feed]) > mark;
}

/** Place the feeds: screen large and camera small, or whichever is published alone; or a placeholder. */
function layOut() {
  if (hlsMode || ended) return;
  /** @type {Feed | null} */
  const main = fresh("screen") ? "screen" : fresh("camera") ? "camera" : null;
  /** @type {Feed | null} */
  const pip = main === "screen" && fresh("camera") ? "camera" : null;
  let waitingForPicture = false;
  for (const feed of FEEDS) {
    const video = feeds[feed];
    // A published feed without a fresh picture yet decodes out of sight ("standby") until it has one.
    const standby = published(feed) && feed !== main && feed !== pip;
    waitingForPicture ||= standby;
    video.hidden = !published(feed);
    video.classList.toggle("main-video", feed === main);
    video.classList.toggle("pip-video", feed === pip);
    video.classList.toggle("standby", standby);
    if (!video.hidden && video.paused) video.play().catch(() => undefined); // muted: always allowed
  }
  $("#videos").dataset.layout = main === null ? "none" : pip === null ? main : `${main}+${pip}`;
  const placeholder = $("#no-picture");
  placeholder.hidden = main !== null;
  placeholder.textContent =
    media.status === "waiting"
      ? "直播开始后，画面将在这里播放"
      : media.status === "reconnecting"
        ? "画面已暂停，讲师重新连接后将继续播放"
        : published("camera") || published("screen")
          ? "正在加载画面…"
          : media.expert.audio
            ? "讲师未开启摄像头，正在播放声音"
            : "讲师暂未开启画面";
  if (waitingForPicture && freshTimer === undefined) {
    freshTimer = window.setInterval(layOut, 100);
  } else if (!waitingForPicture && freshTimer !== undefined) {
    clearInterval(freshTimer);
    freshTimer = undefined;
  }
}

/** Speaker tiles for the seats the server says are taken; never one's own (the preview shows it). */
function showStage() {
  tiles.show(ended ? [] : media.stage, people, myPersonId);
}

/** @param {Media} next */
function applyMedia(next) {
  if (ended) return;
  for (const feed of FEEDS) {
    const was = published(feed);
    const now = next.status === "live" && next.expert[feed];
    if (now && !was) since[feed] = frames(feeds[feed]);
    if (!now) since[feed] = null;
  }
  media = next;
  attendance.setReceiving(next.status === "live");
  if (next.status === "ended") {
    showEnded();
    return;
  }
  showStatus(next.status);
  if (next.status !== "waiting" && !viewing) startWatching();
  if (next.status === "live") playAudio();
  layOut();
  showStage();
}

function playAudio() {
  if (ended || !expertAudio.srcObject || !expertAudio.paused) return;
  expertAudio.play().catch(() => {
    unmuteBtn.hidden = false; // autoplay with sound refused until a tap
  });
}

/**
 * @param {string} label
 * @param {MediaStreamTrack} track
 */
function onTrack(label, track) {
  if (label === "camera" || label === "screen") {
    feeds[label].srcObject = new MediaStream([track]);
    if (since[label] !== null) since[label] = 0; // a new element stream counts from 0
  } else if (label === "audio") {
    expertAudio.srcObject = new MediaStream([track]);
    if (media.status === "live") playAudio();
  } else if (label.startsWith("stage")) {
    tiles.addTrack(label, track);
  }
  layOut();
}

async function startWatching() {
  clearTimeout(retryTimer);
  if (ended || viewing || connecting || hlsMode) return;
  connecting = true;
  try {
    const grant = await mediaGrant(sessionId, "whep");
    iceServers = grant.iceServers;
    const resource = await watch(`/whep/sessions/${sessionId}`, grant.token, onTrack, iceServers);
    if (ended) {
      resource.close();
      return;
    }
    viewing = resource;
    resource.pc.addEventListener("connectionstatechange", () => {
      if (viewing !== resource || ended || resource.pc.connectionState !== "failed") return;
      viewing = null;
      resource.close();
      say("网络原因，实时画面中断，正在重新连接…", "error");
      retryTimer = window.setTimeout(startWatching, 3000);
    });
  } catch (err) {
    if (err instanceof MediaError && err.code === "session_ended") {
      showEnded(); // the live server ended the session
    } else if (err instanceof MediaError && err.status === 404) {
      retryTimer = window.setTimeout(startWatching, 5000); // not live yet: keep trying, quietly
    } else if (err instanceof MediaError && err.code === "room_full") {
      await fallBackToHls("直播间互动席位已满，正在为您播放直播流（有数秒延迟），仍可聊天与提问。", err.details?.hls_url);
    } else if ((err instanceof MediaError || err instanceof ApiError) && err.status === 403) {
      say("您没有报名该课程（或已退出），不能观看直播。", "error"); // e.g. withdrew while watching
    } else if (err instanceof MediaError) {
      say(`实时连接失败（${err.message}），正在重试…`, "error");
      retryTimer = window.setTimeout(startWatching, 5000);
    } else if (err instanceof ApiError && err.code === "session_ended") {
      showEnded(); // the catalog no longer grants media tokens: the session is over
    } else {
      sayError(err);
    }
  } finally {
    connecting = false;
  }
}

/** The media cookie opens this session's /hls/ for an hour: renew it well before, while HLS plays. */
const HLS_ACCESS_RENEW_MS = 20 * 60 * 1000;
let hlsAccessTimer = 0;

/** Ask for (or renew) the cookie that lets this browser fetch the session's HLS (docs/security.md). */
async function hlsAccess() {
  await api("POST", `/api/sessions/${sessionId}/hls-access`);
}

/**
 * Watch the live HLS of the recording through hls.js (or natively), in the camera's place. Its playlist
 * and segments carry who is watching (the media cookie), as a WHEP seat does.
 * @param {string} message
 * @param {string} [url]
 */
async function fallBackToHls(message, url) {
  say(message);
  if (!url || ended) return;
  try {
    await hlsAccess();
  } catch (err) {
    sayError(err);
    return;
  }
  if (ended) return;
  hlsAccessTimer = window.setInterval(() => hlsAccess().catch(() => undefined), HLS_ACCESS_RENEW_MS);
  hlsMode = true;
  showStatus(media.status === "waiting" ? "live" : media.status);
  const video = feeds.camera;
  for (const feed of FEEDS) feeds[feed].classList.remove("pip-video", "standby");
  feeds.screen.hidden = true;
  video.hidden = false;
  video.classList.add("main-video");
  $("#no-picture").hidden = true;
  // hls.js comes from a classic script tag (/static/vendor/hls.min.js); without it, native HLS.
  const Hls = /** @type {typeof import("hls.js").default | undefined} */ (/** @type {any} */ (window).Hls);
  if (Hls && Hls.isSupported()) {
    const player = new Hls({ liveSyncDurationCount: 3 });
    player.loadSource(url);
    player.attachMedia(video);
    player.on(Hls.Events.FRAG_CHANGED, (_event, data) => {
      hlsFragment = Number(data.frag.sn) || 0;
    });
    hls = player;
  } else {
    video.src = url;
  }
  attendance.watchHls(() => ({
    position_s: Number.isFinite(video.currentTime) ? video.currentTime : 0,
    rate: video.playbackRate || 1,
    media_sequence: hlsFragment,
  }));
  video.muted = false;
  video.play().catch(() => {
    video.muted = true; // autoplay with sound refused: play muted, offer the sound on a tap
    video.play().catch(() => undefined);
    unmuteBtn.hidden = false;
  });
}

/** @param {string} token @param {string} url */
async function goOnStage(token, url) {
  try {
    myMedia = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    const preview = /** @type {HTMLVideoElement} */ ($("#my-preview"));
    preview.srcObject = myMedia;
    $("#my-tile").hidden = false;
    handBtn.hidden = true;
    await onStage?.close();
    onStage = await publish(url, token, { camera: myMedia.getVideoTracks()[0], audio: myMedia.getAudioTracks()[0] }, iceServers);
    say("您已上台，讲师和其他学员可以看到、听到您。", "ok");
  } catch (err) {
    await leaveStage();
    if (err instanceof MediaError) say(`上台失败：${err.message}`, "error");
    else say("无法打开摄像头或麦克风，请检查浏览器权限。", "error");
  }
}

async function leaveStage() {
  const publication = onStage;
  onStage = null;
  myMedia?.getTracks().forEach((t) => t.stop());
  myMedia = null;
  /** @type {HTMLVideoElement} */ ($("#my-preview")).srcObject = null;
  $("#my-tile").hidden = true;
  handBtn.hidden = ended;
  await publication?.close();
}

/** A presence check: a dialog whose button the person clicks; the answer echoes the prompt's nonce.
 * @param {{check_id: string, nonce: string, deadline_at: string}} m */
function showCheck(m) {
  const prompt = $("#check-prompt");
  prompt.hidden = false;
  prompt.dataset.check = m.check_id;
  prompt.dataset.nonce = m.nonce;
  clearInterval(checkTimer);
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(m.deadline_at) - Date.now()) / 1000));
    $("#check-left").textContent = String(left);
    if (left <= 0) {
      clearInterval(checkTimer);
      prompt.hidden = true;
      say("签到已超时。", "error");
    }
  };
  tick();
  checkTimer = window.setInterval(tick, 1000);
}

/** The lecture is over: no video boxes, no inputs, the status says so; the replay link once it exists. */
function showEnded() {
  if (ended) return;
  ended = true;
  attendance.stop();
  clearTimeout(retryTimer);
  clearInterval(checkTimer);
  clearInterval(freshTimer);
  clearInterval(hlsAccessTimer);
  channel.close();
  showStatus("ended");
  for (const feed of FEEDS) {
    feeds[feed].hidden = true;
    feeds[feed].srcObject = null;
  }
  expertAudio.srcObject = null;
  hls?.destroy();
  hls = null;
  feeds.camera.removeAttribute("src");
  tiles.clear();
  $("#room").classList.add("ended"); // the side panel alone: what was said stays readable
  $("#check-prompt").hidden = true;
  handBtn.hidden = true;
  unmuteBtn.hidden = true;
  for (const selector of ["#chat-form", "#ask-form"]) {
    const form = /** @type {HTMLFormElement} */ ($(selector));
    for (const el of Array.from(form.elements)) /** @type {HTMLInputElement} */ (el).disabled = true;
    /** @type {HTMLInputElement} */ ($(`${selector} input`)).placeholder = "直播已结束";
  }
  showCourseLink();
  say("感谢您的参与。回放生成后，可在这里观看。", "ok");
  const publication = viewing;
  viewing = null;
  Promise.all([publication?.close(), leaveStage()]).catch(() => undefined);
  waitForReplay(0);
}

/** The session's replay (`{id}`) once it exists, else null. */
async function findReplay() {
  const current = await api("GET", `/api/sessions/${sessionId}`);
  if ("replay" in current) return current.replay;
  const course = await api("GET", `/api/courses/${current.course_id}`);
  return (course.replays || []).find((/** @type {any} */ r) => r.session_id === sessionId) || null;
}

/** @param {number} delayMs */
function waitForReplay(delayMs) {
  window.setTimeout(async () => {
    /** @type {any} */
    let replay = null;
    try {
      replay = await findReplay();
    } catch {
      // try again later
    }
    if (replay) {
      replayLink.href = `/replays/${replay.id}`;
      replayLink.hidden = false;
      say("");
    } else {
      waitForReplay(Math.min(30_000, Math.max(3000, delayMs * 1.5)));
    }
  }, delayMs);
}

function wireChannel() {
  channel.on("welcome", (m) => {
    myPersonId = m.you.person_id;
    for (const p of m.participants) people.set(p.person_id, p.name);
    for (const p of m.stage) people.set(p.person_id, p.name);
    $("#viewers").textContent = String(m.viewer_count);
    $("#chat").replaceChildren(); // a reconnect's welcome repeats the history
    for (const c of m.chat || []) addChat(c);
    renderLearnerQuestions(m.questions || []);
    handRaised = Boolean(m.hand_raised);
    handBtn.textContent = handRaised ? "放下手" : "举手发言";
    if (m.media) applyMedia(m.media);
    // Learners' time is measured: heartbeats and visibility (staff and experts watching are not).
    if (m.you.role === "learner") attendance.start(m.heartbeat_period_s ?? 30);
  });
  channel.on("joined", (m) => { people.set(m.participant.person_id, m.participant.name); });
  channel.on("viewer_count", (m) => { $("#viewers").textContent = String(m.count); });
  channel.on("chat", (m) => addChat(m));
  channel.on("questions", (m) => renderLearnerQuestions(m.questions));
  channel.on("hand", (m) => {
    handRaised = m.raised;
    handBtn.textContent = handRaised ? "放下手" : "举手发言";
  });
  channel.on("stage", (m) => {
    for (const p of m.speakers) people.set(p.person_id, p.name);
    showStage();
  });
  channel.on("media", (m) => applyMedia(m));
  channel.on("promoted", (m) => goOnStage(m.whip_token, m.whip_url));
  channel.on("demoted", () => {
    leaveStage();
    say("讲师已请您下台。");
  });
  channel.on("presence_check", (m) => showCheck(m));
  channel.on("presence_ack", () => {
    $("#check-prompt").hidden = true;
    clearInterval(checkTimer);
    say("已确认在场。", "ok");
  });
  channel.on("session_ended", () => showEnded());
  channel.on("connection", (s) => {
    if (ended) return;
    const box = $("#message");
    if (s.state === "reconnecting") say(CHANNEL_LOST, "error");
    else if (s.state === "open" && box.textContent === CHANNEL_LOST) say("");
    else if (s.code === CLOSE_REPLACED) say("您已在其他窗口或设备打开本直播间，此窗口的聊天与互动已断开。", "error");
    else if (s.code === CLOSE_REVOKED) say("您已退出该课程，不能继续观看本课次的直播。", "error");
  });
  channel.on("error", (m) => say(m.message, "error"));
  channel.connect(`/ws/sessions/${sessionId}`, () => mediaToken(sessionId, "room")).catch(() => {
    if (!ended) say(CHANNEL_LOST, "error");
  });
}

/** @param {any[]} questions */
function renderLearnerQuestions(questions) {
  renderQuestions(questions, (q) =>
    q.person_id === myPersonId || q.answered || ended ? [] : [smallButton("upvote", "赞", () => channel.upvote(q.id))],
  );
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  try {
    session = await api("GET", `/api/sessions/${sessionId}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) showStatus("not_found");
    else sayError(err);
    return;
  }
  $("#title").textContent = `观看直播 · ${session.title}`;
  try {
    await mediaToken(sessionId, "whep");
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      showStatus("forbidden");
      showCourseLink();
      say("您没有报名该课程，报名后即可观看直播。", "error");
    } else if (err instanceof ApiError && err.status === 404) {
      showStatus("not_found");
    } else if (err instanceof ApiError && err.code === "session_ended") {
      showEnded();
    } else {
      sayError(err);
    }
    return;
  }
  if (session.actual_end || session.status === "ended") {
    showEnded();
    return;
  }
  $("#room").hidden = false;
  showStatus("loading");
  wireChannel();
  startWatching();
}

handBtn.addEventListener("click", () => (handRaised ? channel.lowerHand() : channel.raiseHand()));
unmuteBtn.addEventListener("click", () => {
  unmuteBtn.hidden = true;
  if (hlsMode) feeds.camera.muted = false;
  const main = hlsMode ? feeds.camera : expertAudio;
  main.play().catch(() => { unmuteBtn.hidden = false; });
  tiles.resume();
});
$("#check-answer").addEventListener("click", () => {
  const { check, nonce } = $("#check-prompt").dataset;
  if (check && nonce) channel.answerPresence(check, nonce);
});
onSubmitText("#chat-form", (t) => channel.chat(t));
onSubmitText("#ask-form", (t) => channel.ask(t));
init();
