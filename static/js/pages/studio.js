// @ts-check
/** The expert's studio: devices, preview, go live over WHIP, screen share, mute, end; the room channel. */
import { api, ApiError } from "../api.js";
import { addChat, mediaGrant, mediaToken, onSubmitText, renderQuestions, sessionIdFromPath, showStageTrack, smallButton } from "../live-ui.js";
import { RoomChannel } from "../room.js";
import { $, h, requireLogin, say, sayError } from "../ui.js";
import { MediaError, publish, watch } from "../whip.js";

const sessionId = sessionIdFromPath();
const preview = /** @type {HTMLVideoElement} */ ($("#preview"));
const screenPreview = /** @type {HTMLVideoElement} */ ($("#screen-preview"));
const cameraSelect = /** @type {HTMLSelectElement} */ ($("#camera-select"));
const micSelect = /** @type {HTMLSelectElement} */ ($("#mic-select"));
const goLive = /** @type {HTMLButtonElement} */ ($("#go-live"));
const shareBtn = /** @type {HTMLButtonElement} */ ($("#share"));
const muteBtn = /** @type {HTMLButtonElement} */ ($("#mute"));
const endBtn = /** @type {HTMLButtonElement} */ ($("#end"));

/** @type {MediaStream | null} */
let local = null;
/** @type {import("../whip.js").MediaResource | null} */
let cameraPub = null;
/** @type {import("../whip.js").MediaResource | null} */
let screenPub = null;
/** @type {import("../whip.js").MediaResource | null} */
let stageWatch = null;
const channel = new RoomChannel();

/** @param {string} text */
function state(text) {
  $("#state").textContent = text;
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

async function openDevices() {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: cameraSelect.value ? { deviceId: { exact: cameraSelect.value } } : { width: 1280, height: 720 },
    audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
  });
  const old = local;
  local = stream;
  preview.srcObject = stream;
  if (cameraPub) {
    // Live: swap the tracks in place, no renegotiation.
    for (const sender of cameraPub.pc.getSenders()) {
      const kind = sender.track?.kind;
      const next = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      if (next) await sender.replaceTrack(next);
    }
  }
  old?.getTracks().forEach((t) => t.stop());
  await listDevices();
}

async function startLive() {
  if (!local) await openDevices();
  if (!local) return;
  goLive.disabled = true;
  say("正在连接直播服务器…");
  try {
    const grant = await mediaGrant(sessionId, "whip");
    cameraPub = await publish(`/whip/sessions/${sessionId}`, grant.token, {
      camera: local.getVideoTracks()[0] || null,
      audio: local.getAudioTracks()[0] || null,
    }, grant.iceServers);
    cameraPub.pc.addEventListener("connectionstatechange", () => {
      const s = cameraPub?.pc.connectionState;
      state(s === "connected" ? "直播中" : s === "failed" ? "连接中断" : "连接中…");
    });
    shareBtn.disabled = false;
    muteBtn.disabled = false;
    endBtn.disabled = false;
    say("直播已开始。", "ok");
    // Watch the room too, to see speakers the expert brings on stage.
    const viewing = await mediaGrant(sessionId, "whep");
    stageWatch = await watch(`/whep/sessions/${sessionId}`, viewing.token, (label, track) => {
      if (label.startsWith("stage")) showStageTrack(label, track);
    }, viewing.iceServers).catch(() => null);
  } catch (err) {
    goLive.disabled = false;
    if (err instanceof MediaError) say(`无法开始直播：${err.message}`, "error");
    else sayError(err);
  }
}

async function toggleShare() {
  if (screenPub) {
    await screenPub.close();
    screenPub = null;
    screenPreview.hidden = true;
    shareBtn.textContent = "共享屏幕";
    return;
  }
  try {
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
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
    if (err instanceof MediaError) say(`无法共享屏幕：${err.message}`, "error");
    else if (!(err instanceof DOMException)) sayError(err);
  }
}

function toggleMute() {
  const audio = local?.getAudioTracks()[0];
  if (!audio) return;
  audio.enabled = !audio.enabled;
  muteBtn.textContent = audio.enabled ? "静音" : "取消静音";
}

async function stopEverything() {
  await Promise.all([cameraPub?.close(), screenPub?.close(), stageWatch?.close()]);
  cameraPub = screenPub = stageWatch = null;
  local?.getTracks().forEach((t) => t.stop());
  goLive.disabled = true;
  shareBtn.disabled = muteBtn.disabled = endBtn.disabled = true;
  state("已结束");
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
  channel.on("presence_tally", (m) => {
    const id = `tally-${m.check_id}`;
    const text = `签到 ${new Date(m.deadline_at).toLocaleTimeString("zh-CN")} 截止：${m.answered}/${m.expected} 人已确认${m.closed ? "（已结束）" : ""}`;
    const li = document.getElementById(id) || h("li", { id }, []);
    li.textContent = text;
    if (!li.parentElement) $("#tallies").prepend(li);
  });
  channel.on("session_ended", async () => {
    say("直播已结束，回放生成后将出现在课程页面。", "ok");
    await stopEverything();
  });
  channel.on("error", (m) => say(m.message, "error"));
  channel.connect(`/ws/sessions/${sessionId}`, () => mediaToken(sessionId, "room"));
}

/** @param {any[]} questions */
function renderExpertQuestions(questions) {
  renderQuestions(questions, (q) => [
    smallButton("answer", q.answered ? "取消已答" : "标为已答", () => channel.markAnswered(q.id, !q.answered)),
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

async function init() {
  const me = await requireLogin();
  if (!me) return;
  try {
    const session = await api("GET", `/api/sessions/${sessionId}`);
    $("#title").textContent = `讲师直播间 · ${session.title}`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      say("没有找到该课次。", "error");
      goLive.disabled = true;
      return;
    }
    sayError(err);
  }
  try {
    await openDevices();
  } catch {
    say("无法打开摄像头或麦克风，请检查浏览器权限。", "error");
  }
  wireChannel();
}

cameraSelect.addEventListener("change", () => openDevices().catch(sayError));
micSelect.addEventListener("change", () => openDevices().catch(sayError));
goLive.addEventListener("click", startLive);
shareBtn.addEventListener("click", toggleShare);
muteBtn.addEventListener("click", toggleMute);
endBtn.addEventListener("click", () => {
  if (confirm("确定结束本场直播吗？")) channel.endSession();
});
onSubmitText("#chat-form", (t) => channel.chat(t));
$("#check").addEventListener("click", () => channel.presenceCheck(Number((/** @type {HTMLSelectElement} */ ($("#check-window"))).value)));
init();
