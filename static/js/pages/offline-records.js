// @ts-check
/**
 * 签到记录: who signed in and out of an offline session (the venue's staff and supervisors read it); the
 * provider's administrators correct a missed sign-out or a wrong time here, with a reason (audited).
 */
import { api } from "../api.js";
import { $, beijingInstant, busy, h, requireLogin, say, sayError, when } from "../ui.js";

const sessionId = Number(location.pathname.split("/")[2]);

const CLOCK = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** @param {string | null} iso */
function clock(iso) {
  return iso ? CLOCK.format(new Date(iso)) : "—";
}

/**
 * The correction form of one row (provider administrators only).
 * @param {any} row
 */
function correctionForm(row) {
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "correct" }, [
    h("label", {}, ["签退时间（北京时间）", h("input", { name: "signed_out_at", type: "datetime-local", step: "1", required: "" })]),
    h("label", {}, ["签到时间（不改可留空）", h("input", { name: "signed_in_at", type: "datetime-local", step: "1" })]),
    h("label", {}, ["原因", h("input", { name: "reason", required: "", maxlength: "1000", placeholder: "例如：学员手机没电，经讲师确认 11:30 离场" })]),
    h("button", { class: "button primary", type: "submit" }, ["保存更正"]),
  ]));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const out = String(data.get("signed_out_at") || "");
    const inAt = String(data.get("signed_in_at") || "");
    const reason = String(data.get("reason") || "").trim();
    if (!out || !reason) {
      say("请填写签退时间和更正原因。", "error");
      return;
    }
    /** @type {Record<string, string>} */
    const body = { signed_out_at: beijingInstant(out), reason };
    if (inAt) body.signed_in_at = beijingInstant(inAt);
    const done = busy(/** @type {HTMLButtonElement} */ (form.querySelector("button")), "正在保存…");
    try {
      const res = await api("POST", `/api/offline-attendance/${row.id}/corrections`, body);
      await load();
      say(res.resettled ? "已更正，学时已重新结算。" : "已更正，课次结束后结算学时。", "ok");
    } catch (err) {
      sayError(err);
      done();
    }
  });
  return h("details", {}, [h("summary", {}, ["更正"]), form]);
}

/**
 * @param {any} row
 * @param {boolean} mayCorrect
 */
function rowOf(row, mayCorrect) {
  const state = row.open ? "未签退" : row.corrected ? `已更正：${row.corrected.reason}` : "已签退";
  return h("tr", { "data-attendance": String(row.id) }, [
    h("td", {}, [row.name]),
    h("td", {}, [row.phone]),
    h("td", {}, [clock(row.signed_in_at)]),
    h("td", {}, [clock(row.signed_out_at)]),
    h("td", {}, [state]),
    h("td", {}, mayCorrect ? [correctionForm(row)] : []),
  ]);
}

async function load() {
  const data = await api("GET", `/api/sessions/${sessionId}/offline-attendance`);
  const s = data.session;
  $("#title").textContent = `签到记录：${s.title}`;
  $("#facts").replaceChildren(
    h("span", {}, [s.course.title]),
    h("span", {}, [`地点：${s.location || "未填写"}`]),
    h("span", {}, [`${when(data.window.start)} – ${when(data.window.end)}${data.window.source === "correction" ? "（已更正的课次时间）" : ""}`]),
    h("span", {}, [`在场 ${data.signed_in_now} 人，累计 ${data.signed_in_total} 人`]),
  );
  $("#rows").replaceChildren(
    ...(data.items.length
      ? data.items.map((/** @type {any} */ r) => rowOf(r, data.may_correct))
      : [h("tr", {}, [h("td", { colspan: "6", class: "empty" }, ["还没有人签到。"])])]),
  );
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  /** @type {HTMLAnchorElement} */ ($("#back")).href = `/venue/${sessionId}`;
  await load();
}

init().catch((err) => sayError(err));
