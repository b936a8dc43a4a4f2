// @ts-check
/** The provider console's per-session credit table (GET /api/sessions/{id}/credits) and export links. */
import { api } from "./api.js";
import { duration, errorText, h } from "./ui.js";

/** @type {Record<string, string>} */
const STATUS = { none: "未计学时", pending: "待审核", registered: "已认定", mixed: "部分待审核" };
const HEAD = ["姓名", "手机号", "直播在场", "分流观看", "签到", "计入分钟", "学时", "状态", "待核查"];

/** @param {any} r a learner row */
function row(r) {
  const flags = r.flags.filter((/** @type {any} */ f) => f.status === "open").map((/** @type {any} */ f) => f.code);
  return h("tr", { "data-person": String(r.person_id) }, [
    h("td", {}, [r.name]),
    h("td", {}, [r.phone]),
    h("td", {}, [duration(r.live_present_s)]),
    h("td", {}, [duration(r.hls_present_s)]),
    h("td", {}, [`${r.checks_answered}/${r.checks_issued}`]),
    h("td", {}, [String(r.credited_minutes)]),
    h("td", {}, [String(Number(r.xueshi))]),
    h("td", {}, [STATUS[r.status] || r.status]),
    h("td", {}, [flags.length ? h("a", { href: "/review" }, [flags.join("、")]) : "—"]),
  ]);
}

/**
 * A <details> that loads the session's credit table when opened, with CSV/XLSX links.
 * @param {number} sessionId
 * @returns {HTMLElement}
 */
export function creditDetails(sessionId) {
  const body = h("tbody", {}, []);
  const detail = h("details", { class: "credits", "data-credits": String(sessionId) }, [
    h("summary", {}, ["学时与证据"]),
    h("div", { class: "meta" }, [
      h("a", { href: `/api/sessions/${sessionId}/attendance.csv`, download: "" }, ["导出 CSV"]),
      h("a", { href: `/api/sessions/${sessionId}/attendance.xlsx`, download: "" }, ["导出 Excel"]),
      h("span", {}, ["学时为服务器计算的待审核结果"]),
    ]),
    h("div", { class: "table-wrap" }, [h("table", {}, [h("thead", {}, [h("tr", {}, HEAD.map((t) => h("th", {}, [t])))]), body])]),
  ]);
  detail.addEventListener("toggle", async () => {
    if (!(/** @type {HTMLDetailsElement} */ (detail).open)) return;
    body.replaceChildren(h("tr", {}, [h("td", { colspan: String(HEAD.length) }, ["正在加载…"])]));
    try {
      const view = await api("GET", `/api/sessions/${sessionId}/credits`);
      body.replaceChildren(...(view.learners.length ? view.learners.map(row) : [h("tr", {}, [h("td", { colspan: String(HEAD.length) }, ["还没有学员的出勤记录"])])]));
    } catch (err) {
      body.replaceChildren(h("tr", {}, [h("td", { colspan: String(HEAD.length) }, [errorText(err)])]));
    }
  });
  return detail;
}
