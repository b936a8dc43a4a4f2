// @ts-check
/**
 * 我的学时: this year's 学时 by 公需/专业 against the requirement (only registered credit counts; pending
 * is shown as 待审核), each course's entries with their evidence, and sessions attended without credit yet.
 */
import { api } from "../api.js";
import { $, CATEGORY, duration, h, requireLogin, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const STATUS = { pending: "待审核", registered: "已认定", rejected: "未认定" };
/** @type {Record<string, string>} */
const KIND = { live: "直播", hls: "直播（分流）", replay: "回放", external: "腾讯会议/钉钉", mentorship: "师承带徒", reversal: "更正" };

/**
 * One progress bar: registered credit against the requirement, pending beside it.
 * @param {string} label
 * @param {string} registered
 * @param {string} pending
 * @param {string} required
 * @param {string} key
 */
function bar(label, registered, pending, required, key) {
  const need = Number(required) || 0;
  const got = Number(registered) || 0;
  const share = need > 0 ? Math.min(100, Math.round((got / need) * 100)) : 100;
  const waiting = Number(pending) || 0;
  return h("div", { class: "credit-total", "data-total": key }, [
    h("h3", {}, [label]),
    h("div", { class: "meta" }, [
      h("span", { class: "registered" }, [`已认定 ${got} / ${need} 学时`]),
      h("span", { class: "pending" }, [`待审核 ${waiting} 学时`]),
      h("span", {}, [got >= need ? "已达到要求" : `还差 ${Math.max(0, need - got)} 学时`]),
    ]),
    h("div", { class: "progress", role: "progressbar", "aria-label": `${label}进度`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(share) }, [
      h("span", { style: `width: ${share}%` }, []),
    ]),
  ]);
}

/** @param {any} e an entry of GET /api/me/credits */
function entryLine(e) {
  const facts = [h("span", {}, [e.session_title || (e.kind === "mentorship" ? "带徒协议结业" : "课程回放")]), h("span", {}, [KIND[e.kind] || e.kind])];
  if (e.present_s != null) facts.push(h("span", {}, [`在线 ${duration(e.present_s)}`]));
  if (e.coverage != null) facts.push(h("span", {}, [`回放覆盖 ${Math.round(e.coverage * 100)}%`]));
  if (e.checks_total) facts.push(h("span", {}, [`签到 ${e.checks_answered}/${e.checks_total}`]));
  facts.push(h("strong", {}, [`${Number(e.xueshi)} 学时`]));
  facts.push(h("span", { class: `badge status-${e.status}` }, [STATUS[e.status] || e.status]));
  facts.push(h("span", {}, [`规则 v${e.policy_version}`]));
  return h("div", { class: "meta entry", "data-entry": String(e.id) }, facts);
}

/** @param {any} c */
function courseItem(c) {
  // Credit of no course (a mentorship's award) has no course page and no course total.
  const noCourse = c.course_id === null;
  return h("li", { "data-course": noCourse ? "none" : String(c.course_id) }, [
    h("h3", {}, [noCourse ? h("a", { href: "/mentorships" }, [c.title]) : h("a", { href: `/courses/${c.course_id}` }, [c.title])]),
    h("div", { class: "meta" }, [
      h("span", { class: "tag" }, [CATEGORY[c.category] || c.category]),
      h("span", {}, [`待审核 ${Number(c.pending_xueshi)} 学时`]),
      h("span", {}, [`已认定 ${Number(c.registered_xueshi)} 学时`]),
      ...(noCourse ? [] : [h("span", {}, [`课程共 ${Number(c.credit_hours)} 学时`])]),
    ]),
    ...c.entries.map(entryLine),
  ]);
}

/** @param {any} u */
function waitingItem(u) {
  return h("li", { "data-session": String(u.session_id) }, [
    h("h3", {}, [u.session_title]),
    h("div", { class: "meta" }, [
      h("a", { href: `/courses/${u.course_id}` }, [u.course_title]),
      ...(u.scheduled_start ? [h("span", {}, [when(u.scheduled_start)])] : []),
      h("span", { class: "reason" }, [u.reason_text]),
    ]),
  ]);
}

/** @param {number} year */
async function show(year) {
  const data = await api("GET", `/api/me/credits?year=${year}`);
  const s = data.summary;
  $("#totals").replaceChildren(
    bar("公需科目", s.registered.public, s.pending.public, s.required_public, "public"),
    bar("专业科目", s.registered.professional, s.pending.professional, s.required_professional, "professional"),
    bar("年度总计", s.total_registered, s.total_pending, s.required_total, "total"),
  );
  $("#courses").replaceChildren(...(data.courses.length ? data.courses.map(courseItem) : [h("li", { class: "empty" }, ["本年度还没有学时记录。"])]));
  $("#waiting").replaceChildren(...(data.uncredited.length ? data.uncredited.map(waitingItem) : [h("li", { class: "empty" }, ["没有。"])]));
  $("#policy-version").textContent = `v${data.policy_version}`;
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const policy = await api("GET", "/api/credit-policy").catch(() => null);
  if (policy) $("#per-xueshi").textContent = String(policy.params.minutes_per_xueshi);
  // Credit years are Beijing years.
  const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: "Asia/Shanghai", year: "numeric" }).format(new Date()));
  const select = /** @type {HTMLSelectElement} */ ($("#year"));
  for (let y = thisYear; y >= thisYear - 4; y--) select.append(h("option", { value: String(y) }, [`${y} 年`]));
  select.addEventListener("change", () => show(Number(select.value)).catch((err) => sayError(err)));
  await show(thisYear);
}

init().catch((err) => sayError(err));
