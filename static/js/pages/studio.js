// @ts-check
/**
 * The expert's studio: who is calling and the session's state are checked first (no camera, no channel
 * for anyone but the session's expert, nor on an ended session); then devices, preview, go live over WHIP
 * with the camera, the screen or both, screen share, mute, end; the room channel.
 */
import { api, ApiError } from "../api.js";
import { addChat, mediaGrant, mediaToken, onSubmitText, renderQuestions, sessionIdFromPath, showStage, showStageTrack, smallButton } from "../live-ui.js";
import { RoomChannel } from "../room.js";
import { $, duration, h, requireLogin, say, sayError, statusTag, when } from "../ui.js";
import { MediaError, publish, watch } from "../whip.js";

const sessionId = sessionIdFromPath();
const preview = /** @type {HTMLVideoElement} */ ($("#preview"));
const screenPreview = /** @type {HTMLVideoElement} */ ($("#screen-preview"));
const cameraSelect = /** @type {HTMLSelectElement} */ ($("#camera-select"));
const micSelect = /** @type {HTMLSelectElement} */ ($("#mic-select"));
const noCamera = /** @type {HTMLInputElement} */ ($("#no-camera"));
const goLive = /** @type {HTMLButtonElement} */ ($("#go-live"));
const shareBtn = /** @type {HTMLButtonElement} */ ($("#share"));
const muteBtn = /** @type {HTMLButtonElement} */ ($("#mute"));
const endBtn = /** @type {HTMLButtonElement} */ ($("#end"));

// Going live earlier than this before the scheduled start is "early": the studio says what learners see.
const EARLY_MIN = 10;

/** @type {any} the session (GET /api/sessions/{id}), its status kept current by this page */
let session = null;
/** When the expert may go live at the earliest (ms; GET /api/sessions/{id}/access publish_opens_at). */
let opensAt = 0;
/** @type {MediaStream | null} microphone, and the camera unless the expert chose not to use it */
let local = null;
/** @type {MediaStream | null} the shared screen when it is the main picture (no camera) */
let screenOnly = null;
/** @type {import("../whip.js").MediaResource | null} the main publication: camera or screen, and sound */
let mainPub = null;
/** @type {import("../whip.js").MediaResource | null} a screen shared beside the camera */
let screenPub = null;
/** @type {import("../whip.js").MediaResource | null} */
let stageWatch = null;
const channel = new RoomChannel();

/** @param {string} text */
function state(text) {
  $("#state").textContent = text;
}

/**
 * A span of time in words: "3 天 2 小时", "1 小时 5 分钟", "12 分钟".
 * @param {number} ms
 */
function span(ms) {
  const minutes = Math.max(1, Math.round(ms / 60_000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return `${days} 天${hours ? ` ${hours} 小时` : ""}`;
  if (hours) return `${hours} 小时${minutes % 60 ? ` ${minutes % 60} 分钟` : ""}`;
  return `${minutes} 分钟`;
}

/** The session's state and schedule, above the video. */
function showSessionState() {
  $("#session-state").replaceChildren(
    h("span", {}, ["课次状态：", statusTag(session)]),
    h("span", {}, [`计划时间 ${when(session.scheduled_start)} – ${when(session.scheduled_end)}`]),
  );
}

/**
 * What learners see if the expert goes live now (or, once live, what they see), when the time is not
 * the scheduled one; "" when it is.
 * @param {boolean} live whether this page is publishing
 */
function timingText(live) {
  const now = Date.now();
  const start = new Date(session.scheduled_start).getTime();
  const end = new Date(session.scheduled_end).getTime();
  if (!live && session.status === "live") {
    return "本课次正在直播中（可能是在另一个页面或设备上开始的）。在此开始直播将接替之前的画面，学员无需重新进入。";
  }
  if (!live && now < opensAt) {
    return `距离计划开始还有 ${span(start - now)}。计划开始前 30 分钟起可以开始直播（${when(new Date(opensAt).toISOString())} 起）。`;
  }
  if (now < start - EARLY_MIN * 60_000) {
    return live
      ? `直播已开始，比计划提前 ${span(start - now)}。已报名的学员此时进入直播间即可观看，课程页显示“直播中”。`
      : `距离计划开始还有 ${span(start - now)}。现在开始直播也可以：已报名的学员此时进入直播间即可观看，课程页会显示“直播中”。`;
  }
  if (now > end) {
    return live
      ? "直播已开始（已超过计划结束时间）。学员仍可进入直播间观看，本次直播计为该课次。"
      : `已超过计划结束时间（${when(session.scheduled_end)}）。仍可开始直播：学员仍可进入直播间观看，本次直播计为该课次。`;
  }
  return "";
}

function showTiming(live = false) {
  const text = timingText(live);
  const box = $("#timing");
  box.textContent = text;
  box.hidden = !text;
}

/**
 * The session is over: no going live again; the replay, when it exists.
 * @param {boolean} [onArrival] the page was opened on an ended session: no video, devices or channel
 */
function showEnded(onArrival = false) {
  if (onArrival) {
    // Nothing to preview or to talk to: only the state, the disabled button and the way to the replay.
    for (const id of ["#preview", "#screen-preview", "#stage-videos", "#devices", "#share", "#mute", "#end", "#room-line", "#room-side"]) {
      $(id).hidden = true;
    }
    /** @type {HTMLElement} */ ($("#preview").parentElement).hidden = true;
  }
  session.status = "ended";
  showSessionState();
  goLive.disabled = true;
  goLive.textContent = "本课次已结束";
  noCamera.disabled = cameraSelect.disabled = micSelect.disabled = true;
  shareBtn.disabled = muteBtn.disabled = endBtn.disabled = true;
  state("已结束");
  const box = $("#timing");
  box.replaceChildren("本课次已结束，不能再次开始直播。");
  if (session.replay) {
    box.append(" ", h("a", { href: `/replays/${session.replay.id}` }, [`观看回放（${duration(session.replay.duration_s)}）`]));
  } else {
    box.append("回放生成后会出现在课程页面和“我的授课”中。");
  }
  box.append(" ", h("a", { href: "/teach" }, ["返回我的授课"]));
  box.hidden = false;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  /** @param {HTMLSelectElement} select @param {MediaDeviceKind} kind @param {string} fallback */
  const fill = (select, kind, fallback) => {
    const current = select.value;
    const items = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...items.map((d, i) => h("option", { value: d.deviceId }, [d.label || `${fallback} ${i + 1}`])));
    if (items.some((d) => d.deviceId === current)) select.value = current;
  };
  fill(cameraSelect, "videoinput", "摄像头");
  fill(micSelect, "audioinput", "麦克风");
}

/** Open the microphone and, unless 不使用摄像头 is ticked, the camera; live, swap them in place. */
async function openDevices() {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: noCamera.checked
      ? false
      : cameraSelect.value
        ? { deviceId: { exact: cameraSelect.value } }
        : { width: 1280, height: 720 },
    audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
  });
  const old = local;
  local = stream;
  if (!screenOnly) preview.srcObject = noCamera.checked ? null : stream;
  if (mainPub) {
    // Live: swap the tracks in place, no renegotiation (the screen of a screen-only lecture stays).
    for (const sender of mainPub.pc.getSenders()) {
      const kind = sender.track?.kind;
      const next = kind === "audio" ? stream.getAudioTracks()[0] : screenOnly ? null : stream.getVideoTracks()[0];
      if (next) await sender.replaceTrack(next);
    }
  }
  old?.getTracks().forEach((t) => t.stop());
  await listDevices();
}

/** Ask for the screen to share; null when the expert cancels the browser's picker. */
async function pickScreen() {
  try {
    return await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err instanceof DOMException) return null;
    throw err;
  }
}

/**
 * The server refused because the session is over (the catalog or the live server): show it as ended.
 * @param {unknown} err
 */
function endedRefusal(err) {
  return (err instanceof ApiError || err instanceof MediaError) && err.code === "session_ended";
}

async function startLive() {
  goLive.disabled = true;
  noCamera.disabled = true;
  say("正在连接直播服务器…");
  try {
    if (!local) await openDevices();
    if (!local) return;
    /** @type {{camera?: MediaStreamTrack | null, screen?: MediaStreamTrack | null, audio?: MediaStreamTrack | null}} */
    const tracks = { audio: local.getAudioTracks()[0] || null };
    if (noCamera.checked) {
      screenOnly = await pickScreen();
      if (!screenOnly) {
        say("没有选择要共享的屏幕，直播未开始。", "error");
        goLive.disabled = noCamera.disabled = false;
        return;
      }
      tracks.screen = screenOnly.getVideoTracks()[0];
      preview.srcObject = screenOnly;
      watchScreenEnd(tracks.screen);
    } else {
      tracks.camera = local.getVideoTracks()[0] || null;
    }
    const grant = await mediaGrant(sessionId, "whip");
    mainPub = await publish(`/whip/sessions/${sessionId}`, grant.token, tracks, grant.iceServers);
    mainPub.pc.addEventListener("connectionstatechange", () => {
      const s = mainPub?.pc.connectionState;
      state(s === "connected" ? "直播中" : s === "failed" ? "连接中断" : "连接中…");
    });
    session.status = "live";
    showSessionState();
    showTiming(true);
    shareBtn.disabled = false;
    shareBtn.textContent = screenOnly ? "更换共享画面" : "共享屏幕";
    muteBtn.disabled = false;
    endBtn.disabled = false;
    say(screenOnly ? "直播已开始（屏幕共享，不使用摄像头）。" : "直播已开始。", "ok");
    // Watch the room too, to see speakers the expert brings on stage.
    const viewing = await mediaGrant(sessionId, "whep");
    stageWatch = await watch(`/whep/sessions/${sessionId}`, viewing.token, (label, track) => {
      if (label.startsWith("stage")) showStageTrack(label, track);
    }, viewing.iceServers).catch(() => null);
  } catch (err) {
    if (endedRefusal(err)) {
      say("本课次已结束，不能再次开始直播。", "error");
      showEnded();
      return;
    }
    goLive.disabled = false;
    noCamera.disabled = Boolean(mainPub);
    if (err instanceof MediaError) say(`无法开始直播：${err.message}`, "error");
    else if (err instanceof DOMException) say("无法打开摄像头、麦克风或屏幕，请检查浏览器权限。", "error");
    else sayError(err);
  }
}

/**
 * A screen-only lecture whose screen the expert stops from the browser's own bar: learners would see a
 * frozen picture, so say so and offer to share again.
 * @param {MediaStreamTrack} track
 */
function watchScreenEnd(track) {
  track.addEventListener("ended", () => {
    if (!mainPub || !screenOnly || screenOnly.getVideoTracks()[0] !== track) return;
    say("屏幕共享已停止，学员只能听到声音。点击“更换共享画面”重新共享。", "error");
  });
}

async function toggleShare() {
  if (screenOnly) {
    // Screen-only lecture: put another screen or window in place of the shared one, no renegotiation.
    const display = await pickScreen();
    if (!display || !mainPub) return;
    const track = display.getVideoTracks()[0];
    const sender = mainPub.pc.getSenders().find((s) => s.track?.kind === "video");
    await sender?.replaceTrack(track);
    screenOnly.getTracks().forEach((t) => t.stop());
    screenOnly = display;
    preview.srcObject = display;
    watchScreenEnd(track);
    say("已更换共享画面。", "ok");
    return;
  }
  if (screenPub) {
    await screenPub.close();
    screenPub = null;
    screenPreview.hidden = true;
    shareBtn.textContent = "共享屏幕";
    return;
  }
  try {
    const display = await pickScreen();
    if (!display) return;
    const track = display.getVideoTracks()[0];
    const grant = await mediaGrant(sessionId, "whip");
    screenPub = await publish(`/whip/sessions/${sessionId}`, grant.token, { screen: track }, grant.iceServers);
    screenPreview.srcObject = display;
    screenPreview.hidden = false;
    shareBtn.textContent = "停止共享";
    track.addEventListener("ended", () => {
      if (screenPub) toggleShare();
    });
  } catch (err) {
    if (endedRefusal(err)) showEnded();
    else if (err instanceof MediaError) say(`无法共享屏幕：${err.message}`, "error");
    else sayError(err);
  }
}

function toggleMute() {
  const audio = local?.getAudioTracks()[0];
  if (!audio) return;
  audio.enabled = !audio.enabled;
  muteBtn.textContent = audio.enabled ? "静音" : "取消静音";
}

async function stopEverything() {
  await Promise.all([mainPub?.close(), screenPub?.close(), stageWatch?.close()]);
  mainPub = screenPub = stageWatch = null;
  local?.getTracks().forEach((t) => t.stop());
  screenOnly?.getTracks().forEach((t) => t.stop());
  local = screenOnly = null;
  showEnded();
}

function wireChannel() {
  channel.on("welcome", (m) => {
    $("#viewers").textContent = String(m.viewer_count);
    for (const c of m.chat || []) addChat(c);
    renderExpertQuestions(m.questions || []);
    renderHands(m.hands || []);
    renderSpeakers(m.stage || []);
  });
  channel.on("viewer_count", (m) => { $("#viewers").textContent = String(m.count); });
  channel.on("chat", (m) => addChat(m));
  channel.on("questions", (m) => renderExpertQuestions(m.questions));
  channel.on("hands", (m) => renderHands(m.queue));
  channel.on("stage", (m) => renderSpeakers(m.speakers));
  // Speaker tiles follow the server's word on who is on stage (media.stage), not track mute events.
  channel.on("welcome", (m) => showStage(m.media?.stage ?? []));
  channel.on("media", (m) => showStage(m.stage));
  channel.on("presence_tally", (m) => {
    const id = `tally-${m.check_id}`;
    const text = `签到 ${new Date(m.deadline_at).toLocaleTimeString("zh-CN")} 截止：${m.answered}/${m.expected} 人已确认${m.closed ? "（已结束）" : ""}`;
    const li = document.getElementById(id) || h("li", { id }, []);
    li.textContent = text;
    if (!li.parentElement) $("#tallies").prepend(li);
  });
  channel.on("session_ended", async () => {
    await stopEverything();
    say("直播已结束，回放生成后将出现在课程页面和“我的授课”中。", "ok");
  });
  channel.on("error", (m) => say(m.message, "error"));
  channel.connect(`/ws/sessions/${sessionId}`, () => mediaToken(sessionId, "room")).catch((err) => {
    // The first connection failed (the channel does not retry that one): the lecture can still go live.
    if (endedRefusal(err)) showEnded();
    else say("互动频道（聊天、提问、举手）暂时连接不上，刷新页面可重试；直播不受影响。", "error");
  });
}

/** @param {any[]} questions */
function renderExpertQuestions(questions) {
  renderQuestions(questions, (q) => [
    smallButton("answer", q.answered ? "撤销" : "标为已答", () => channel.markAnswered(q.id, !q.answered)),
  ]);
}

/** @param {any[]} queue */
function renderHands(queue) {
  $("#hands").replaceChildren(
    ...(queue.length
      ? queue.map((p) => h("li", { "data-person": String(p.person_id) }, [p.name, smallButton("promote", "请上台", () => channel.promote(p.person_id))]))
      : [h("li", { class: "meta" }, ["暂无举手"])]),
  );
}

/** @param {any[]} speakers */
function renderSpeakers(speakers) {
  $("#speakers").replaceChildren(
    ...(speakers.length
      ? speakers.map((p) => h("li", { "data-person": String(p.person_id) }, [p.name, smallButton("demote", "请下台", () => channel.demote(p.person_id))]))
      : [h("li", { class: "meta" }, ["暂无"])]),
  );
}

/**
 * Not this session's expert: say so, point learners to the live room, and touch no device.
 * @param {any} access GET /api/sessions/{id}/access
 */
function refuse(access) {
  const box = $("#refusal");
  box.replaceChildren(h("p", {}, ["您不是本课次的讲师，无法进入讲师直播间。"]));
  if (access.watch) {
    box.append(h("p", {}, [h("a", { class: "button primary", href: `/watch/${sessionId}` }, ["进入直播间观看"])]));
  } else if (session) {
    box.append(h("p", {}, ["报名本课程的学员可以在直播间观看：", h("a", { href: `/courses/${session.course_id}` }, ["查看课程"])]));
  }
  box.hidden = false;
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  /** @type {any} */
  let access;
  try {
    session = await api("GET", `/api/sessions/${sessionId}`);
    $("#title").textContent = `讲师直播间 · ${session.title}`;
    document.title = `讲师直播间 · ${session.title} · Lectern 讲堂`;
    access = await api("GET", `/api/sessions/${sessionId}/access`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      say("没有找到该课次。", "error");
      $("#message").append(" ", h("a", { href: "/teach" }, ["返回我的授课"]));
    } else {
      sayError(err);
    }
    return;
  }
  opensAt = Date.parse(access.publish_opens_at) || 0;
  if (access.publish_refused === "not_expert") {
    refuse(access);
    return;
  }
  $("#studio").hidden = false;
  showSessionState();
  if (session.status === "ended" || access.publish_refused === "session_ended") {
    showEnded(true);
    return;
  }
  showTiming();
  try {
    await openDevices();
  } catch {
    say("无法打开摄像头或麦克风，请检查浏览器权限。", "error");
  }
  goLive.disabled = false;
  wireChannel();
}

cameraSelect.addEventListener("change", () => openDevices().catch(sayError));
micSelect.addEventListener("change", () => openDevices().catch(sayError));
noCamera.addEventListener("change", () => {
  cameraSelect.disabled = noCamera.checked;
  // Ticked: the camera goes off now (the light too); the screen is chosen when going live.
  openDevices().catch(() => say("无法打开摄像头或麦克风，请检查浏览器权限。", "error"));
});
goLive.addEventListener("click", startLive);
shareBtn.addEventListener("click", () => toggleShare().catch(sayError));
muteBtn.addEventListener("click", toggleMute);
endBtn.addEventListener("click", () => {
  if (confirm("确定结束本场直播吗？结束后不能再次开始，回放将自动生成。")) channel.endSession();
});
onSubmitText("#chat-form", (t) => channel.chat(t));
$("#check").addEventListener("click", () => channel.presenceCheck(Number((/** @type {HTMLSelectElement} */ ($("#check-window"))).value)));
init();
