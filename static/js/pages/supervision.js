// @ts-check
/**
 * 监管: the providers the bureau (or an industry department: its sector) supervises with their year, a
 * provider's sessions with their reconciliation (超额 highlighted), a session's ledger entries; the report
 * as Excel or CSV. Where the person is lives in the URL (?year=&sector=&provider=&over=&session=), so the
 * browser's back button walks back up the drill-down.
 * API: GET /api/supervision/providers, …/providers/{id}/sessions, …/sessions/{id}/entries,
 * POST /api/supervision/refresh, GET /api/supervision/export.xlsx|csv (docs/supervision.md).
 */
import { api } from "../api.js";
import { $, busy, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

const PAGE_SIZE = 20;
/** @type {Record<string, string>} */
const REASON = {
  duration: "学时超过课次时长",
  not_held: "课次未举办",
  attendance: "计入学时者无出勤记录",
  enrolled: "计入人数超过报名人数",
  capacity: "计入人数超过容量",
};
/** @type {Record<string, string>} */
const STATUS = { pending: "待审核", registered: "已认定", rejected: "已驳回", revoked: "已撤销" };
/** @type {Record<string, string>} */
const KIND = { live: "直播", hls: "分流直播", replay: "回放", external: "外部会议", offline: "线下培训", mentorship: "师承带徒", reversal: "冲正" };
/** @type {Record<string, string>} */
const WINDOW = { correction: "核定时间", actual: "实际时间", schedule: "计划时间", none: "未举办" };
/** @type {Record<string, string>} */
const ORG_TYPE = { ce_base: "继续教育基地", training_institution: "培训机构" };

/** @param {string | number | null | undefined} x 学时 as the API writes them ("12.50") */
function xs(x) {
  return String(Number(x || 0));
}

/**
 * A delay the way people read it: 35 分钟, 5.2 小时, 3.1 天.
 * @param {number | null | undefined} seconds
 */
function delay(seconds) {
  if (seconds == null) return "—";
  if (seconds < 3600) return `${Math.round(seconds / 60)} 分钟`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} 小时`;
  return `${(seconds / 86400).toFixed(1)} 天`;
}

/** @param {any} x a {pending, registered, rejected, revoked, total} of 学时 */
function statusLine(x) {
  return `已认定 ${xs(x.registered)} · 待审核 ${xs(x.pending)} · 已驳回 ${xs(x.rejected)} · 已撤销 ${xs(x.revoked)}`;
}

/** The state of the drill-down, from the URL. */
function state() {
  const q = new URLSearchParams(location.search);
  return {
    year: q.get("year") || "",
    sector: q.get("sector") || "",
    provider: q.get("provider") || "",
    session: q.get("session") || "",
    over: q.get("over") === "1",
    page: Math.max(1, Number(q.get("page")) || 1),
    epage: Math.max(1, Number(q.get("epage")) || 1),
  };
}

/**
 * Go somewhere in the drill-down (a new history entry) and show it.
 * @param {Record<string, string>} changes
 * @param {boolean} [replace]
 */
function go(changes, replace = false) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v) q.set(k, v);
    else q.delete(k);
  }
  const url = `${location.pathname}?${q}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  show().catch((err) => sayError(err));
}

/**
 * A figure that opens what is behind it.
 * @param {string} label
 * @param {string | number} value
 * @param {Record<string, string>} target
 * @param {string} [cls]
 */
function figure(label, value, target, cls = "") {
  const button = h("button", { type: "button", class: `figure ${cls}`.trim() }, [`${label} `, h("strong", {}, [String(value)])]);
  button.addEventListener("click", () => go(target));
  return button;
}

/** @param {string} text */
function plain(text) {
  return h("span", { class: "figure" }, [text]);
}

function exportLinks() {
  const s = state();
  const q = new URLSearchParams({ year: s.year });
  if (s.provider) q.set("provider", s.provider);
  /** @type {HTMLAnchorElement} */ ($("#export-xlsx")).href = `/api/supervision/export.xlsx?${q}`;
  /** @type {HTMLAnchorElement} */ ($("#export-csv")).href = `/api/supervision/export.csv?${q}`;
  $("#export-xlsx").textContent = s.provider ? "导出本机构（Excel）" : "导出 Excel";
  $("#export-csv").textContent = s.provider ? "导出本机构（CSV）" : "导出 CSV";
}

/** @param {any} snap the snapshot the figures come from */
function snapshotLine(snap) {
  const minutes = Math.round(snap.age_s / 60);
  const every = Number.isFinite(snap.refresh_every_s) ? `，每 ${Math.round(snap.refresh_every_s / 60)} 分钟自动更新` : "";
  $("#snapshot").textContent = `统计于 ${when(snap.refreshed_at)}（${minutes < 1 ? "刚刚" : `${minutes} 分钟前`}${every}）；学时记录列表为实时数据。`;
}

/** @param {any} p a provider of GET /api/supervision/providers */
function providerItem(p) {
  const to = { provider: String(p.provider_id), session: "", over: "", page: "", epage: "" };
  const over = p.over_sessions > 0;
  return h("li", { class: over ? "over" : "", "data-provider": String(p.provider_id) }, [
    h("h3", {}, [
      h("a", { href: `?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), provider: String(p.provider_id) })}` }, [p.name]),
      " ",
      h("span", { class: "tag" }, [p.sector || "未设行业"]),
      " ",
      ...(over ? [h("span", { class: "badge over" }, [`超额课次 ${p.over_sessions}`])] : []),
    ]),
    h("div", { class: "figures" }, [
      plain(ORG_TYPE[p.type] || p.type),
      plain(`课程 ${p.courses}`),
      figure("课次", `${p.sessions}（已举办 ${p.sessions_held}）`, to),
      figure("超额课次", p.over_sessions, { ...to, over: "1" }, over ? "alert" : ""),
      plain(`学员 ${p.attendees} 人`),
      figure("学时", xs(p.xueshi.total), to),
      plain(statusLine(p.xueshi)),
      plain(`审核用时 中位 ${delay(p.latency_median_s)} / P90 ${delay(p.latency_p90_s)}`),
      plain(`待核查 ${p.flags_open} / ${p.flags_total}`),
    ]),
  ]);
}

/** @param {any[]} rows by_sector */
function sectorTable(rows) {
  const head = h("tr", {}, ["行业", "机构", "课次", "超额课次", "学时记录", "学时合计", "待核查"].map((t) => h("th", {}, [t])));
  const body = rows.map((t) => {
    const name = t.sector || "未设行业";
    const cell = t.sector ? h("a", { href: "#", "data-sector": t.sector }, [name]) : h("span", {}, [name]);
    if (t.sector) cell.addEventListener("click", (ev) => { ev.preventDefault(); go({ sector: t.sector }); });
    return h("tr", { class: t.over_sessions > 0 ? "over" : "" }, [
      h("td", {}, [cell]), h("td", {}, [String(t.providers)]), h("td", {}, [String(t.sessions)]),
      h("td", {}, [String(t.over_sessions)]), h("td", {}, [String(t.entries)]), h("td", {}, [xs(t.xueshi.total)]),
      h("td", {}, [String(t.flags_open)]),
    ]);
  });
  $("#sectors").replaceChildren(h("thead", {}, [head]), h("tbody", {}, body));
}

/** @param {any} s a session of GET …/providers/{id}/sessions */
function sessionItem(s) {
  const to = { session: String(s.session_id), epage: "" };
  const span = s.window ? `${when(s.window[0])}–${when(s.window[1]).slice(-5)}（${Math.round(s.window_s / 60)} 分钟，${WINDOW[s.window_source]}）` : "未举办";
  return h("li", { class: s.over ? "over" : "", "data-session": String(s.session_id) }, [
    h("h3", {}, [
      h("a", { href: `?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), session: String(s.session_id) })}` }, [`${s.course_title} · ${s.title}`]),
      " ",
      s.over ? h("span", { class: "badge over" }, ["超额"]) : h("span", { class: "badge status-registered" }, ["核对无误"]),
    ]),
    ...(s.over ? [h("p", { class: "reasons" }, [s.reasons.map((/** @type {string} */ r) => REASON[r] || r).join("；")])] : []),
    h("div", { class: "figures" }, [
      plain(`${KIND[s.kind] || s.kind} · ${span}`),
      plain(`每人最多 ${s.allowed_xueshi == null ? "—" : xs(s.allowed_xueshi)} 学时，最高个人 ${xs(s.max_person_xueshi)}`),
      figure("计入学时", `${s.credited} 人`, to, s.reasons.includes("enrolled") || s.reasons.includes("capacity") ? "alert" : ""),
      figure("无出勤记录", `${s.without_attendance} 人`, to, s.without_attendance > 0 ? "alert" : ""),
      plain(`有出勤记录 ${s.attending} 人 · 报名 ${s.enrolled} 人${s.capacity ? ` · 容量 ${s.capacity}` : ""}`),
      figure("学时记录", s.entries, to),
      plain(statusLine(s.xueshi)),
      plain(`待核查 ${s.flags_open} / ${s.flags_total}`),
    ]),
  ]);
}

/** @param {any} e an entry of GET …/sessions/{id}/entries */
function entryItem(e) {
  const ev = e.evidence || {};
  const evidence = [];
  if (ev.present_s != null) evidence.push(`在场 ${Math.round(ev.present_s / 60)} 分钟`);
  if (ev.ratio != null) evidence.push(`出勤比例 ${Math.round(ev.ratio * 100)}%`);
  if (ev.checks_total != null) evidence.push(`签到 ${ev.checks_answered ?? 0}/${ev.checks_total}`);
  if (ev.coverage != null) evidence.push(`回放覆盖 ${Math.round(ev.coverage * 100)}%`);
  return h("li", { class: e.over || !e.attended ? "over" : "", "data-entry": String(e.id) }, [
    h("h3", {}, [
      `${e.name}（${e.phone}）`,
      " ",
      h("span", { class: `badge status-${e.kind === "reversal" ? "reversal" : e.status}` }, [e.kind === "reversal" ? "冲正" : STATUS[e.status] || e.status]),
      ...(e.over ? [" ", h("span", { class: "badge over" }, ["超过课次时长"])] : []),
      ...(!e.attended ? [" ", h("span", { class: "badge over" }, ["无出勤记录"])] : []),
    ]),
    h("div", { class: "figures" }, [
      plain(`${KIND[e.kind] || e.kind} · ${xs(e.xueshi)} 学时（本课次合计 ${xs(e.person_xueshi)}）· ${e.minutes} 分钟`),
      plain(`计算于 ${when(e.computed_at)}`),
      plain(e.decided_at ? `审核于 ${when(e.decided_at)}${e.approval_latency_s != null ? `（用时 ${delay(e.approval_latency_s)}）` : ""}` : "尚未审核"),
      plain(`规则版本 ${e.policy_version}`),
      ...(evidence.length ? [plain(evidence.join(" · "))] : []),
      ...(e.note ? [plain(`备注：${e.note}`)] : []),
    ]),
  ]);
}

/**
 * @param {string} prefix sessions or entries
 * @param {number} page
 * @param {number} total
 * @param {string} key the URL parameter of the page
 */
function pager(prefix, page, total, key) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $(`#${prefix}-page`).textContent = `第 ${page} / ${pages} 页（共 ${total} 条）`;
  /** @type {HTMLButtonElement} */ ($(`#${prefix}-prev`)).disabled = page <= 1;
  /** @type {HTMLButtonElement} */ ($(`#${prefix}-next`)).disabled = page >= pages;
  $(`#${prefix}-prev`).onclick = () => go({ [key]: String(page - 1) });
  $(`#${prefix}-next`).onclick = () => go({ [key]: String(page + 1) });
}

/** @param {string} view providers, sessions or entries */
function reveal(view) {
  for (const name of ["providers", "sessions", "entries"]) $(`#${name}-view`).hidden = name !== view;
}

async function showProviders() {
  const s = state();
  const q = new URLSearchParams({ year: s.year });
  if (s.sector) q.set("sector", s.sector);
  $("#providers").replaceChildren(h("li", { class: "empty" }, ["正在加载…"]));
  reveal("providers");
  const data = await api("GET", `/api/supervision/providers?${q}`);
  const select = /** @type {HTMLSelectElement} */ ($("#sector"));
  select.replaceChildren(h("option", { value: "" }, [data.scope.all ? "全部行业" : "本部门主管行业"]), ...data.sectors.map((/** @type {string} */ x) => h("option", { value: x }, [x])));
  select.value = s.sector;
  snapshotLine(data.snapshot);
  sectorTable(data.by_sector);
  $("#providers").replaceChildren(...(data.providers.length
    ? data.providers.map(providerItem)
    : [h("li", { class: "empty" }, [data.scope.all ? "没有培训机构。" : "本部门主管行业还没有培训机构（或本部门的行业尚未设置，请联系系统管理员）。"])]));
}

async function showSessions() {
  const s = state();
  const q = new URLSearchParams({ year: s.year, page: String(s.page), page_size: String(PAGE_SIZE) });
  if (s.over) q.set("over", "1");
  /** @type {HTMLInputElement} */ ($("#over-only")).checked = s.over;
  $("#sessions").replaceChildren(h("li", { class: "empty" }, ["正在加载…"]));
  reveal("sessions");
  const data = await api("GET", `/api/supervision/providers/${s.provider}/sessions?${q}`);
  const p = data.provider;
  snapshotLine(data.snapshot);
  $("#provider-title").textContent = `${p.name}（${p.sector || "未设行业"}）`;
  $("#provider-summary").textContent = `${data.year} 年：课次 ${p.sessions}（已举办 ${p.sessions_held}，超额 ${p.over_sessions}），学员 ${p.attendees} 人，学时 ${xs(p.xueshi.total)}（${statusLine(p.xueshi)}），审核用时中位 ${delay(p.latency_median_s)}`;
  $("#sessions").replaceChildren(...(data.items.length
    ? data.items.map(sessionItem)
    : [h("li", { class: "empty" }, [s.over ? "没有超额课次。" : "本年度没有课次。"])]));
  pager("sessions", s.page, data.total, "page");
}

async function showEntries() {
  const s = state();
  const q = new URLSearchParams({ year: s.year, page: String(s.epage), page_size: String(PAGE_SIZE) });
  $("#entries").replaceChildren(h("li", { class: "empty" }, ["正在加载…"]));
  reveal("entries");
  const data = await api("GET", `/api/supervision/sessions/${s.session}/entries?${q}`);
  const x = data.session;
  $("#session-title").textContent = `${data.provider.name} · ${x.course_title} · ${x.title}`;
  $("#session-figures").replaceChildren(
    h("p", { class: x.over ? "notice over" : "notice" }, [
      x.over ? `超额：${x.reasons.map((/** @type {string} */ r) => REASON[r] || r).join("；")}。` : "核对无误。",
      ` ${x.window ? `计时 ${when(x.window[0])}–${when(x.window[1]).slice(-5)}（${Math.round(x.window_s / 60)} 分钟，${WINDOW[x.window_source]}）` : "课次未举办"}；每人最多 ${x.allowed_xueshi == null ? "—" : xs(x.allowed_xueshi)} 学时，最高个人 ${xs(x.max_person_xueshi)}；计入学时 ${x.credited} 人，其中无出勤记录 ${x.without_attendance} 人；有出勤记录 ${x.attending} 人，报名 ${x.enrolled} 人${x.capacity ? `，容量 ${x.capacity}` : ""}。${statusLine(x.xueshi)}。（实时数据）`,
    ]),
  );
  $("#entries").replaceChildren(...(data.items.length ? data.items.map(entryItem) : [h("li", { class: "empty" }, ["本课次没有学时记录。"])]));
  pager("entries", s.epage, data.total, "epage");
}

async function show() {
  const s = state();
  /** @type {HTMLSelectElement} */ ($("#year")).value = s.year;
  exportLinks();
  if (s.session) await showEntries();
  else if (s.provider) await showSessions();
  else await showProviders();
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  if (!hasRole(me, "bureau") && !hasRole(me, "admin")) {
    say("只有人社部门、行业主管部门和系统管理员可以查看监管数据。", "error");
    for (const id of ["#filters", "#snapshot-line", "#exports", "#providers-view"]) $(id).hidden = true;
    return;
  }
  // Credit years are Beijing years.
  const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: "Asia/Shanghai", year: "numeric" }).format(new Date()));
  const yearSelect = /** @type {HTMLSelectElement} */ ($("#year"));
  for (let y = thisYear; y >= thisYear - 4; y--) yearSelect.append(h("option", { value: String(y) }, [`${y} 年`]));
  const s = state();
  if (!s.year || ![...yearSelect.options].some((o) => o.value === s.year)) {
    const q = new URLSearchParams(location.search);
    q.set("year", String(thisYear));
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }
  yearSelect.addEventListener("change", () => go({ year: yearSelect.value, provider: "", session: "", page: "", epage: "" }));
  const sectorSelect = /** @type {HTMLSelectElement} */ ($("#sector"));
  sectorSelect.addEventListener("change", () => go({ sector: sectorSelect.value, provider: "", session: "", page: "", epage: "" }));
  const overOnly = /** @type {HTMLInputElement} */ ($("#over-only"));
  overOnly.addEventListener("change", () => go({ over: overOnly.checked ? "1" : "", page: "" }));
  $("#back-to-providers").addEventListener("click", (ev) => { ev.preventDefault(); go({ provider: "", session: "", over: "", page: "", epage: "" }); });
  $("#back-to-sessions").addEventListener("click", (ev) => { ev.preventDefault(); go({ session: "", epage: "" }); });
  const refresh = /** @type {HTMLButtonElement} */ ($("#refresh"));
  refresh.addEventListener("click", async () => {
    const done = busy(refresh, "正在统计…");
    try {
      await api("POST", "/api/supervision/refresh", { year: Number(state().year) });
      say("统计已更新。", "ok");
      await show();
    } catch (err) {
      sayError(err);
    } finally {
      done();
    }
  });
  // Links inside the lists are real links (open in a new tab works); a plain click stays in the page.
  for (const [list, key, reset] of [["#providers", "provider", { session: "", over: "", page: "", epage: "" }], ["#sessions", "session", { epage: "" }]]) {
    $(/** @type {string} */ (list)).addEventListener("click", (ev) => {
      const a = /** @type {HTMLElement} */ (ev.target).closest("h3 a");
      if (!(a instanceof HTMLAnchorElement) || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      ev.preventDefault();
      const id = new URL(a.href).searchParams.get(/** @type {string} */ (key)) || "";
      go({ .../** @type {Record<string, string>} */ (reset), [/** @type {string} */ (key)]: id });
    });
  }
  window.addEventListener("popstate", () => { show().catch((err) => sayError(err)); });
  await show();
}

init().catch((err) => sayError(err));
