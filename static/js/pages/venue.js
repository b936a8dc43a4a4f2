// @ts-check
/**
 * 现场签到屏: the venue's full-screen display for an offline session. Shows the current signed code as a
 * large QR code (drawn by the server), counts down to the next one, and how many people are signed in.
 * Only the provider's administrators and the session's experts may open it (the API says so otherwise).
 */
import { api, ApiError } from "../api.js";
import { $, errorText, requireLogin, say, when } from "../ui.js";

const sessionId = Number(location.pathname.split("/")[2]);
const RETRY_MS = 5000; // after a network failure
const CLOSED_RETRY_MS = 30_000; // outside the sign-in hours: look again now and then

/** When the shown code must be replaced (performance.now() time), and when it stops working. */
let nextAt = 0;
let expiresAt = 0;
let periodS = 30;
/** @type {number | undefined} */
let timer;

/**
 * The Chinese sentence of an API refusal: the one the API gives (details.message_zh), else ui.js's.
 * @param {unknown} err
 */
function refusalText(err) {
  if (err instanceof ApiError && typeof err.details?.message_zh === "string") return err.details.message_zh;
  if (err instanceof ApiError && err.status === 403) return "只有本课程培训机构的管理员和本课次的授课专家可以打开签到屏。";
  return errorText(err);
}

/** @param {any} data GET /api/sessions/{id}/venue/code */
function show(data) {
  const s = data.session;
  $("#title").textContent = s.title;
  $("#course").textContent = s.course.title;
  $("#place").textContent = `地点：${s.location || "未填写"}`;
  $("#time").textContent = `时间：${when(s.scheduled_start)} – ${when(s.scheduled_end)}`;
  const img = /** @type {HTMLImageElement} */ ($("#qr"));
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data.svg)}`;
  img.dataset.code = data.code;
  img.dataset.url = data.url;
  $("#present").textContent = String(data.signed_in_now);
  $("#total").textContent = String(data.signed_in_total);
  $("#rule").textContent = `二维码每 ${data.period_s} 秒更换一次；拍照或转发的二维码 ${data.valid_s} 秒内失效。签到、签退各扫一次。`;
  periodS = data.period_s;
  const at = performance.now();
  nextAt = at + data.next_in_s * 1000;
  expiresAt = at + (new Date(data.expires_at).getTime() - new Date(data.server_time).getTime());
  $("#display").hidden = false;
  say("");
}

function tick() {
  const now = performance.now();
  const left = Math.max(0, Math.ceil((nextAt - now) / 1000));
  $("#countdown").textContent = String(left);
  $("#bar").style.width = `${Math.min(100, Math.round((left / periodS) * 100))}%`;
  // A code past its validity must not stay on the screen: learners would scan it in vain.
  if (expiresAt && now >= expiresAt) $("#display").hidden = true;
}

async function refresh() {
  window.clearTimeout(timer);
  try {
    show(await api("GET", `/api/sessions/${sessionId}/venue/code`));
    // The server says when the next code shows; a little later, so that it is there when asked.
    timer = window.setTimeout(refresh, Math.max(250, nextAt - performance.now() + 250));
  } catch (err) {
    const closed = err instanceof ApiError && err.code === "venue_closed";
    if (err instanceof ApiError && err.status < 500 && !closed && err.status !== 429) {
      $("#display").hidden = true;
      say(refusalText(err), "error");
      return; // not staff, not an offline session: nothing will change by asking again
    }
    if (closed) {
      $("#display").hidden = true;
      const opens = /** @type {any} */ (err).details?.opens_at;
      say(`${refusalText(err)}${typeof opens === "string" ? `（签到从 ${when(opens)} 开始）` : ""}`, "info");
    } else {
      say("网络中断，正在重新连接…", "error");
    }
    timer = window.setTimeout(refresh, closed ? CLOSED_RETRY_MS : RETRY_MS);
  }
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  if (!Number.isSafeInteger(sessionId)) {
    say("课次不存在。", "error");
    return;
  }
  /** @type {HTMLAnchorElement} */ ($("#records")).href = `/venue/${sessionId}/records`;
  $("#fullscreen").addEventListener("click", () => {
    document.documentElement.requestFullscreen().catch(() => say("浏览器不允许全屏，可按 F11。", "info"));
  });
  document.addEventListener("fullscreenchange", () => {
    document.body.classList.toggle("is-fullscreen", Boolean(document.fullscreenElement));
  });
  window.setInterval(tick, 250);
  say("正在加载签到二维码…");
  await refresh();
}

init().catch((err) => say(refusalText(err), "error"));
