// @ts-check
/** The learner's live page: WHEP video (screen large, camera small), chat, questions, raise hand,
 * presence checks, going on stage when promoted; HLS when the room is full or WebRTC fails. */
import { ApiError } from "../api.js";
import { addChat, mediaGrant, mediaToken, onSubmitText, renderQuestions, sessionIdFromPath, showStageTrack, smallButton } from "../live-ui.js";
import { RoomChannel } from "../room.js";
import { $, requireLogin, say, sayError } from "../ui.js";
import { MediaError, publish, watch } from "../whip.js";

const sessionId = sessionIdFromPath();
const mainVideo = /** @type {HTMLVideoElement} */ ($("#main-video"));
const pipVideo = /** @type {HTMLVideoElement} */ ($("#pip-video"));
const handBtn = /** @type {HTMLButtonElement} */ ($("#hand"));
const channel = new RoomChannel();
/** @type {import("../whip.js").MediaResource | null} */
let viewing = null;
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

/** @param {string} text */
function state(text) {
  $("#state").textContent = text;
}

// The expert's camera and screen: with both, the screen is large and the camera small.
const expert = { camera: new MediaStream(), screen: new MediaStream(), audio: new MediaStream() };
function layout() {
  const hasScreen = expert.screen.getVideoTracks().some((t) => t.readyState === "live");
  const big = hasScreen ? expert.screen : expert.camera;
  const small = hasScreen ? expert.camera : null;
  const main = new MediaStream([...big.getVideoTracks(), ...expert.audio.getAudioTracks()]);
  if (mainVideo.srcObject instanceof MediaStream) {
    const current = mainVideo.srcObject.getTracks().map((t) => t.id).join();
    if (current === main.getTracks().map((t) => t.id).join()) return;
  }
  mainVideo.srcObject = main;
  mainVideo.play().catch(() => { $("#unmute").hidden = false; });
  pipVideo.hidden = !small || small.getVideoTracks().length === 0;
  pipVideo.srcObject = small;
}

/**
 * @param {string} label
 * @param {MediaStreamTrack} track
 */
function onTrack(label, track) {
  if (label === "camera" || label === "screen" || label === "audio") {
    expert[label].addTrack(track);
    track.addEventListener("unmute", layout);
    layout();
  } else if (label.startsWith("stage")) {
    showStageTrack(label, track);
  }
}

async function startWatching() {
  if (ended) return;
  state("连接中…");
  try {
    const grant = await mediaGrant(sessionId, "whep");
    iceServers = grant.iceServers;
    viewing = await watch(`/whep/sessions/${sessionId}`, grant.token, onTrack, iceServers);
    viewing.pc.addEventListener("connectionstatechange", () => {
      const s = viewing?.pc.connectionState;
      if (s === "connected") state("直播中");
      if (s === "failed") fallBackToHls("网络原因无法建立实时连接，已切换为直播流（有数秒延迟）。");
    });
  } catch (err) {
    if (err instanceof MediaError && err.status === 404) {
      state("等待讲师开播");
      say("直播尚未开始，开始后将自动播放。");
      retryTimer = window.setTimeout(startWatching, 5000);
    } else if (err instanceof MediaError && err.code === "room_full") {
      fallBackToHls("直播间互动席位已满，正在为您播放直播流（有数秒延迟），仍可聊天与提问。", err.details?.hls_url);
    } else if (err instanceof MediaError) {
      fallBackToHls(`实时连接失败（${err.message}），已切换为直播流。`);
    } else {
      sayError(err);
    }
  }
}

/**
 * Watch the live HLS of the recording through hls.js (or natively).
 * @param {string} message
 * @param {string} [url]
 */
function fallBackToHls(message, url) {
  say(message);
  if (!url) {
    state("暂不可用");
    return;
  }
  state("直播流");
  // hls.js comes from a classic script tag (/static/vendor/hls.min.js); without it, native HLS.
  const Hls = /** @type {typeof import("hls.js").default | undefined} */ (/** @type {any} */ (window).Hls);
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ liveSyncDurationCount: 3 });
    hls.loadSource(url);
    hls.attachMedia(mainVideo);
  } else {
    mainVideo.src = url;
  }
  mainVideo.play().catch(() => { $("#unmute").hidden = false; });
}

/** @param {string} token @param {string} url */
async function goOnStage(token, url) {
  try {
    myMedia = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
    const preview = /** @type {HTMLVideoElement} */ ($("#my-preview"));
    preview.srcObject = myMedia;
    preview.hidden = false;
    await onStage?.close();
    onStage = await publish(url, token, { camera: myMedia.getVideoTracks()[0], audio: myMedia.getAudioTracks()[0] }, iceServers);
    say("您已上台，讲师和其他学员可以看到、听到您。", "ok");
  } catch (err) {
    if (err instanceof MediaError) say(`上台失败：${err.message}`, "error");
    else say("无法打开摄像头或麦克风，请检查浏览器权限。", "error");
  }
}

async function leaveStage() {
  await onStage?.close();
  onStage = null;
  myMedia?.getTracks().forEach((t) => t.stop());
  myMedia = null;
  $("#my-preview").hidden = true;
}

/** @param {{check_id: string, deadline_at: string}} m */
function showCheck(m) {
  const prompt = $("#check-prompt");
  prompt.hidden = false;
  prompt.dataset.check = m.check_id;
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

function wireChannel() {
  channel.on("welcome", (m) => {
    myPersonId = m.you.person_id;
    $("#viewers").textContent = String(m.viewer_count);
    for (const c of m.chat || []) addChat(c);
    renderLearnerQuestions(m.questions || []);
    handRaised = Boolean(m.hand_raised);
    handBtn.textContent = handRaised ? "放下手" : "举手发言";
  });
  channel.on("viewer_count", (m) => { $("#viewers").textContent = String(m.count); });
  channel.on("chat", (m) => addChat(m));
  channel.on("questions", (m) => renderLearnerQuestions(m.questions));
  channel.on("hand", (m) => {
    handRaised = m.raised;
    handBtn.textContent = handRaised ? "放下手" : "举手发言";
  });
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
  channel.on("session_ended", async () => {
    ended = true;
    clearTimeout(retryTimer);
    state("已结束");
    say("直播已结束，感谢您的参与。回放生成后可在课程页面观看。", "ok");
    handBtn.disabled = true;
    await Promise.all([viewing?.close(), leaveStage()]);
    viewing = null;
  });
  channel.on("error", (m) => say(m.message, "error"));
  channel.connect(`/ws/sessions/${sessionId}`, () => mediaToken(sessionId, "room"));
}

/** @param {any[]} questions */
function renderLearnerQuestions(questions) {
  renderQuestions(questions, (q) =>
    q.person_id === myPersonId || q.answered ? [] : [smallButton("upvote", "赞", () => channel.upvote(q.id))],
  );
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  try {
    await mediaToken(sessionId, "whep");
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      say("您尚未报名该课程，无法观看直播。", "error");
      state("无权观看");
      return;
    }
    if (err instanceof ApiError && err.status === 404) {
      say("没有找到该课次。", "error");
      return;
    }
    sayError(err);
    return;
  }
  wireChannel();
  startWatching();
}

handBtn.addEventListener("click", () => (handRaised ? channel.lowerHand() : channel.raiseHand()));
$("#unmute").addEventListener("click", () => {
  mainVideo.muted = false;
  mainVideo.play().catch(() => undefined);
  $("#unmute").hidden = true;
});
$("#check-answer").addEventListener("click", () => {
  const id = $("#check-prompt").dataset.check;
  if (id) channel.answerPresence(id);
});
onSubmitText("#chat-form", (t) => channel.chat(t));
onSubmitText("#ask-form", (t) => channel.ask(t));
init();
