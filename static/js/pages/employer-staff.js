// @ts-check
/**
 * 学时台账: an employer's staff with their registered 学时 of the year against the requirement (公需, 专业,
 * total), who is short and by how much, pending 学时 apart, the courses the employer arranged for them,
 * and the study record export (GET /api/employers/{id}/staff, …/study-record.xlsx|csv).
 */
import { api } from "../api.js";
import { $, CATEGORY, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

const PAGE_SIZE = 20;
/** @type {Record<string, string>} */
const ENROLLED = { enrolled: "已报名", withdrawn: "已退出" };

/**
 * A number of 学时 the way people read it: "12.5", "90".
 * @param {string | number} x
 */
function xs(x) {
  return String(Number(x));
}

/**
 * One requirement line with its progress bar: registered against required, and what is still lacking.
 * @param {string} label
 * @param {string} got
 * @param {string} need
 * @param {string} lack
 * @param {string} key
 */
function bar(label, got, need, lack, key) {
  const required = Number(need) || 0;
  const share = required > 0 ? Math.min(100, Math.round((Number(got) / required) * 100)) : 100;
  return h("div", { class: "staff-bar", "data-total": key }, [
    h("div", { class: "meta" }, [
      h("span", {}, [label]),
      h("span", { class: "registered" }, [`${xs(got)} / ${xs(need)} 学时`]),
      h("span", { class: "lack" }, [Number(lack) > 0 ? `还差 ${xs(lack)}` : "已达到"]),
    ]),
    h("div", { class: "progress", role: "progressbar", "aria-label": `${label}进度`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(share) }, [
      h("span", { style: `width: ${share}%` }, []),
    ]),
  ]);
}

/** @param {any} a an arranged enrolment */
function arrangedItem(a) {
  return h("li", { "data-course": String(a.course_id) }, [
    h("a", { href: `/courses/${a.course_id}` }, [a.course_title]),
    " ",
    h("span", { class: "tag" }, [CATEGORY[a.category] || a.category]),
    " ",
    h("span", { class: "meta" }, [
      `${ENROLLED[a.status] || a.status} · ${when(a.enrolled_at)} · 已认定 ${xs(a.registered_xueshi)} 学时 · 待审核 ${xs(a.pending_xueshi)} 学时`,
    ]),
  ]);
}

/** @param {any} p a staff member */
function staffItem(p) {
  const need = Number(p.shortfall);
  const parts = [
    h("h3", {}, [
      `${p.name}（${p.phone}）`,
      " ",
      h("span", { class: `badge ${need > 0 ? "state-missed" : "state-scheduled"}`, "data-shortfall": p.shortfall }, [need > 0 ? `未达标：还差 ${xs(p.shortfall)} 学时` : "已达标"]),
    ]),
    bar("公需科目", p.registered.public, p.required_public, p.short.public, "public"),
    bar("专业科目", p.registered.professional, p.required_professional, p.short.professional, "professional"),
    bar("年度总计", p.total_registered, p.required_total, p.short.total, "total"),
    h("div", { class: "meta" }, [
      h("span", { class: "pending" }, [`待审核 ${xs(p.total_pending)} 学时`]),
      ...(Number(p.total_pending) > 0 ? [h("span", {}, [`（公需 ${xs(p.pending.public)}，专业 ${xs(p.pending.professional)}）`]), h("a", { href: "/employer" }, ["去审核"])] : []),
    ]),
  ];
  if (p.arranged.length) {
    parts.push(h("details", {}, [
      h("summary", {}, [`单位安排的课程（${p.arranged.length}）`]),
      h("ul", { class: "arranged" }, p.arranged.map(arrangedItem)),
    ]));
  }
  return h("li", { "data-person": String(p.person_id) }, parts);
}

/**
 * The employers the person may look at: their own as an employer administrator; for the HR bureau and
 * admins, every employer (GET /api/organizations?type=employer).
 * @param {any} me
 * @returns {Promise<[string, string][]>}
 */
async function employers(me) {
  /** @type {[string, string][]} */
  const out = (me.roles || [])
    .filter((/** @type {any} */ r) => r.role === "employer_admin" && r.org_id != null)
    .map((/** @type {any} */ r) => [String(r.org_id), r.org_name || "本单位"]);
  if (hasRole(me, "bureau") || hasRole(me, "admin")) {
    const data = await api("GET", "/api/organizations?type=employer&page_size=100");
    for (const o of data.items) if (!out.some(([id]) => id === String(o.id))) out.push([String(o.id), o.name]);
  }
  return out;
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const choices = await employers(me);
  if (!choices.length) {
    say("只有单位管理员和人社部门可以查看学时台账。", "error");
    $("#filters").hidden = true;
    $("#exports").hidden = true;
    return;
  }
  const params = new URLSearchParams(location.search);
  const orgSelect = /** @type {HTMLSelectElement} */ ($("#org"));
  orgSelect.replaceChildren(...choices.map(([value, label]) => h("option", { value }, [label])));
  if (choices.some(([id]) => id === params.get("org"))) orgSelect.value = String(params.get("org"));
  // Credit years are Beijing years.
  const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: "Asia/Shanghai", year: "numeric" }).format(new Date()));
  const yearSelect = /** @type {HTMLSelectElement} */ ($("#year"));
  for (let y = thisYear; y >= thisYear - 4; y--) yearSelect.append(h("option", { value: String(y) }, [`${y} 年`]));
  if ([...yearSelect.options].some((o) => o.value === params.get("year"))) yearSelect.value = String(params.get("year"));
  const sortSelect = /** @type {HTMLSelectElement} */ ($("#sort"));
  if ([...sortSelect.options].some((o) => o.value === params.get("sort"))) sortSelect.value = String(params.get("sort"));
  const shortOnly = /** @type {HTMLInputElement} */ ($("#short-only"));
  shortOnly.checked = params.get("short") === "1";
  let page = 1;

  const load = async () => {
    const org = orgSelect.value;
    const year = yearSelect.value;
    const q = new URLSearchParams({ year, sort: sortSelect.value, short: shortOnly.checked ? "1" : "0", page: String(page), page_size: String(PAGE_SIZE) });
    history.replaceState(null, "", `${location.pathname}?${new URLSearchParams({ org, year, sort: sortSelect.value, short: q.get("short") || "0" })}`);
    /** @type {HTMLAnchorElement} */ ($("#export-xlsx")).href = `/api/employers/${org}/study-record.xlsx?year=${year}`;
    /** @type {HTMLAnchorElement} */ ($("#export-csv")).href = `/api/employers/${org}/study-record.csv?year=${year}`;
    $("#staff").replaceChildren(h("li", { class: "empty" }, ["正在加载…"]));
    const data = await api("GET", `/api/employers/${org}/staff?${q}`);
    const r = data.required;
    $("#requirement").textContent = `共 ${xs(r.total)} 学时，其中公需科目不少于 ${xs(r.public)}、专业科目不少于 ${xs(r.professional)}`;
    const c = data.counts;
    $("#summary").textContent = `${data.org.name} ${data.year} 年：共 ${c.staff} 人，已达标 ${c.met} 人，未达标 ${c.short} 人`;
    $("#staff").replaceChildren(...(data.items.length
      ? data.items.map(staffItem)
      : [h("li", { class: "empty" }, [shortOnly.checked ? "没有未达标的员工。" : "本单位还没有登记的员工。"])]));
    const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    $("#page").textContent = `第 ${page} / ${pages} 页`;
    /** @type {HTMLButtonElement} */ ($("#prev")).disabled = page <= 1;
    /** @type {HTMLButtonElement} */ ($("#next")).disabled = page >= pages;
  };
  const reload = () => { load().catch((err) => sayError(err)); };
  for (const control of [orgSelect, yearSelect, sortSelect, shortOnly]) {
    control.addEventListener("change", () => { page = 1; reload(); });
  }
  $("#prev").addEventListener("click", () => { page = Math.max(1, page - 1); reload(); });
  $("#next").addEventListener("click", () => { page += 1; reload(); });
  await load();
}

init().catch((err) => sayError(err));
