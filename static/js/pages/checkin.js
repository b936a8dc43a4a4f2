// @ts-check
/**
 * 现场签到 (phone-first): a learner opens the URL of the venue's QR code (`/checkin/{session}?c=<code>`),
 * sees the session, the place and their state, and signs in or out with one big button. Without a login
 * they go to the login page and come back here, code and all. The code is used once: the next act needs
 * the next scan.
 */
import { api, ApiError } from "../api.js";
import { $, busy, errorText, h, say, sayError, statusTag, when, whoami } from "../ui.js";

const sessionId = Number(location.pathname.split("/")[2]);
/** The code this page was opened with, until it is used (then the next act needs a new scan). */
let code = new URLSearchParams(location.search).get("c") || "";

const CLOCK = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** @param {string} iso */
function clock(iso) {
  return CLOCK.format(new Date(iso));
}

/**
 * The API's own Chinese sentence for a refusal (details.message_zh), else ui.js's.
 * @param {unknown} err
 */
function refusalText(err) {
  if (err instanceof ApiError && typeof err.details?.message_zh === "string") return err.details.message_zh;
  return errorText(err);
}

/** @param {any} row an attendance interval */
function intervalItem(row) {
  const parts = [`签到 ${clock(row.signed_in_at)}`];
  if (row.signed_out_at) {
    const minutes = Math.floor((new Date(row.signed_out_at).getTime() - new Date(row.signed_in_at).getTime()) / 60_000);
    parts.push(`签退 ${clock(row.signed_out_at)}`, `共 ${minutes} 分钟`);
  } else {
    parts.push("尚未签退");
  }
  if (row.corrected) parts.push("（已由工作人员更正）");
  return h("li", { "data-attendance": String(row.id) }, [parts.join(" · ")]);
}

/**
 * @param {string} text
 */
function hint(text) {
  const box = $("#hint");
  box.textContent = text;
  box.hidden = !text;
}

/** @param {any} st GET /api/sessions/{id}/checkin */
function render(st) {
  const s = st.session;
  document.title = `${s.title} · 现场签到`;
  $("#title").textContent = s.title;
  $("#facts").replaceChildren(
    statusTag({ status: s.status, kind: "offline" }),
    h("a", { href: `/courses/${s.course.id}` }, [s.course.title]),
    h("span", { id: "place" }, [`地点：${s.location || "未填写"}`]),
    h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
  );
  const state = $("#state");
  state.dataset.state = st.state;
  state.className = `checkin-state${st.state === "signed_in" ? " in" : ""}`;
  const open = st.intervals.find((/** @type {any} */ r) => !r.signed_out_at);
  const last = st.intervals[st.intervals.length - 1];
  state.textContent =
    st.state === "signed_in"
      ? `已签到（${clock(open.signed_in_at)}）`
      : st.state === "signed_out"
        ? `已签退（${clock(last.signed_out_at)}）`
        : "尚未签到";
  $("#intervals").replaceChildren(...st.intervals.map(intervalItem));

  const button = /** @type {HTMLButtonElement} */ ($("#act"));
  button.hidden = true;
  if (!st.enrolled && st.state === "not_signed_in") {
    hint("您没有报名该课程，不能签到：请先在课程页报名，或联系培训机构。");
    return;
  }
  if (st.elsewhere) {
    hint(`您正在「${st.elsewhere.title}」（${st.elsewhere.location || "地点未填"}）签到中：同一时间只能在一处参加培训，请先在那里签退。`);
    return;
  }
  const action = st.state === "signed_in" ? "sign_out" : "sign_in";
  if (!code) {
    hint(action === "sign_out" ? "离开时请再次扫描现场大屏上的二维码签退。" : "请扫描现场大屏上的二维码签到。");
    return;
  }
  hint("");
  button.dataset.action = action;
  button.textContent = action === "sign_out" ? "签退" : st.state === "signed_out" ? "再次签到" : "签到";
  button.hidden = false;
}

async function load() {
  render(await api("GET", `/api/sessions/${sessionId}/checkin`));
}

async function act() {
  const button = /** @type {HTMLButtonElement} */ ($("#act"));
  const action = button.dataset.action || "sign_in";
  const done = busy(button, action === "sign_out" ? "正在签退…" : "正在签到…");
  try {
    await api("POST", `/api/sessions/${sessionId}/checkin`, { action, code });
    say(action === "sign_out" ? "签退成功。" : "签到成功。离开时请再次扫码签退。", "ok");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.field === "X-CSRF-Token")) {
      sayError(err);
    } else {
      say(refusalText(err), "error");
    }
  } finally {
    // Used or refused, this code is spent for this page: the next act needs the next scan.
    code = "";
    history.replaceState(null, "", location.pathname);
    done();
  }
  await load().catch((err) => sayError(err));
}

async function init() {
  const me = await whoami().catch(() => null);
  if (!me) {
    // Back here after logging in, with the code (it may have expired by then: the page says so).
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    return;
  }
  if (!Number.isSafeInteger(sessionId)) {
    say("课次不存在。", "error");
    return;
  }
  $("#act").addEventListener("click", () => {
    act().catch((err) => sayError(err));
  });
  try {
    await load();
  } catch (err) {
    say(refusalText(err), "error");
  }
}

init().catch((err) => sayError(err));
