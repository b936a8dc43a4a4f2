// @ts-check
/**
 * 单位审核: an employer's administrators approve or reject their staff's pending 学时 (one by one or
 * several at once), with the evidence behind each entry; revoke registered ones; the HR bureau does the
 * same for learners without an employer and for employer administrators' own entries (nobody decides
 * their own: an employer with one administrator has nobody else), and overrides rejections. Every decision goes through
 * /api/credit-entries/… and is written to the audit log by the server.
 */
import { api, ApiError } from "../api.js";
import { $, CATEGORY, busy, duration, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const STATUS = { pending: "待审核", registered: "已认定", rejected: "已驳回", revoked: "已撤销" };
/** @type {Record<string, string>} */
const KIND = { live: "直播", hls: "直播（分流）", replay: "回放", external: "腾讯会议/钉钉", offline: "线下", mentorship: "师承带徒" };
/** @type {Record<string, string>} */
const ACTION = { approve: "通过", reject: "驳回", revoke: "撤销认定", override: "改判认定" };
/** @type {Record<string, string>} */
const ROLE = { employer_admin: "单位管理员", bureau: "人社部门", admin: "系统管理员" };
/** @type {Record<string, string>} */
const FLAG = {
  auto_confirm: "签到应答过快（疑似脚本）",
  too_fast: "播放速度超过允许倍速",
  forward_seek: "首次观看时跳过内容",
  forged_or_replayed: "心跳数据异常",
  uncorroborated_heartbeats: "心跳与实际播放不符",
  two_devices: "两台设备同时学习",
  multi_course_overlap: "不同课程时间重叠",
  after_end: "课次结束后仍有学习记录",
  daily_cap: "超过每日学时上限",
  double_claim: "同一内容重复申报",
  low_trust: "外部平台数据可信度低（需核实）",
};
const PAGE_SIZE = 20;
const CLOCK = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false });

/**
 * @typedef {{ queue: string, status: string, year: string, page: number }} View
 * @typedef {{ action: string, ids: number[], what: string }} Pending
 */

/**
 * The Chinese text for an error of a decision (the server's codes in details.reason), else the usual one.
 * @param {unknown} err
 */
function decisionError(err) {
  if (!(err instanceof ApiError)) return null;
  const reason = err.details?.reason;
  if (reason === "own_entry") return "不能审核本人的学时：请由本单位其他管理员或人社部门审核。";
  if (reason === "not_yours_to_decide") return "这条学时不归您审核。";
  if (reason === "reversed" || reason === "reversal") return "这条学时已被更正冲销，不能再审核。";
  if (err.status === 409) return "学时状态已变化（可能已被其他管理员处理），请刷新后重试。";
  if (err.status === 404) return "找不到所选学时，可能已被处理或不属于本单位。";
  if (err.field === "reason") return "请填写理由。";
  return null;
}

/** @param {unknown} err */
function showError(err) {
  const text = decisionError(err);
  if (text) say(text, "error");
  else sayError(err);
}

/**
 * Credited time intervals in Beijing time: "09:03–09:40、09:41–10:32".
 * @param {string[][]} spans
 */
function intervals(spans) {
  if (!spans || !spans.length) return "—";
  return spans.map(([a, b]) => `${CLOCK.format(new Date(a))}–${CLOCK.format(new Date(b))}`).join("、");
}

/**
 * The evidence of one entry, as the approver reads it.
 * @param {any} e
 */
function evidence(e) {
  const ev = e.evidence || {};
  const rows = [
    ["计入时段", intervals(ev.intervals)],
    ["课次时间", ev.window ? `${when(ev.window[0])} – ${CLOCK.format(new Date(ev.window[1]))}` : "—"],
  ];
  if (ev.present_s != null) rows.push(["在线时长", `${duration(ev.present_s)}${ev.window_s ? `（课次 ${duration(ev.window_s)}）` : ""}`]);
  if (ev.ratio != null) rows.push(["出勤比例", `${Math.round(ev.ratio * 100)}%`]);
  if (ev.coverage != null) rows.push(["回放覆盖", `${Math.round(ev.coverage * 100)}%`]);
  if (ev.checks_total != null) rows.push(["签到应答", `${ev.checks_answered ?? 0} / ${ev.checks_total}`]);
  rows.push(["计入分钟", `${e.minutes} 分钟`]);
  if (ev.course_cap_applied) rows.push(["上限", "已达课程学时上限"]);
  if (ev.daily_cap_cut && Object.keys(ev.daily_cap_cut).length) rows.push(["上限", "已达每日学时上限"]);
  if (ev.platform) rows.push(["来源", `${ev.platform}${ev.trust === "low" ? "（可信度低）" : ""}`]);
  rows.push(["规则版本", `v${e.policy_version}`]);
  return h("dl", { class: "evidence" }, rows.flatMap(([k, v]) => [h("dt", {}, [k]), h("dd", {}, [v])]));
}

/**
 * @param {any} e
 * @param {(action: string, entry: any) => void} act
 * @param {(id: number, checked: boolean) => void} pick
 * @param {Set<number>} picked
 */
function entryItem(e, act, pick, picked) {
  const head = [h("span", {}, [`${e.name}（${e.phone}）`])];
  const parts = [];
  if (e.actions.includes("approve")) {
    const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", class: "pick", "aria-label": `选择 ${e.name} 的学时` }));
    box.checked = picked.has(e.id);
    box.addEventListener("change", () => pick(e.id, box.checked));
    parts.push(h("label", { class: "check" }, [box, ...head]));
  } else {
    parts.push(h("div", {}, head));
  }
  parts.push(
    h("h3", {}, [e.course_title, " ", h("span", { class: `badge status-${e.status}` }, [STATUS[e.status] || e.status])]),
    h("div", { class: "meta" }, [
      h("span", {}, [e.session_title || "课程回放"]),
      h("span", {}, [KIND[e.kind] || e.kind]),
      h("span", { class: "tag" }, [CATEGORY[e.category] || e.category]),
      ...(e.learner_is_employer_admin ? [h("span", { class: "tag", "data-tag": "employer-admin" }, ["单位管理员"])] : []),
      h("strong", { class: "xueshi" }, [`${Number(e.xueshi)} 学时`]),
      h("span", {}, [`学习日 ${e.credit_day}`]),
      h("span", {}, [`结算于 ${when(e.computed_at)}`]),
    ]),
  );
  if (e.flags.length) {
    parts.push(h("div", { class: "meta flags" }, [
      "异常提示：",
      ...e.flags.map((/** @type {any} */ f) => h("span", { class: "tag", "data-flag": f.code }, [FLAG[f.code] || f.code])),
    ]));
  }
  parts.push(h("details", {}, [h("summary", {}, ["学习证据"]), evidence(e)]));
  if (e.own) parts.push(h("p", { class: "meta" }, [e.learner_is_employer_admin ? "本人学时，须由本单位其他管理员或人社部门审核。" : "本人学时，须由他人审核。"]));
  if (e.reversed) parts.push(h("p", { class: "meta" }, ["已被更正冲销。"]));
  if (e.last_decision) {
    const d = e.last_decision;
    const who = e.decided_by_name ? `${e.decided_by_name}（${ROLE[d.decided_as] || d.decided_as}）` : ROLE[d.decided_as] || "";
    parts.push(h("p", { class: "meta decision" }, [`${when(d.decided_at)} ${who}${ACTION[d.action] || d.action}${d.reason ? `：${d.reason}` : ""}`]));
  }
  const buttons = e.actions.map((/** @type {string} */ a) => {
    const b = h("button", { type: "button", class: a === "approve" ? "button primary" : "button", "data-action": a }, [ACTION[a] || a]);
    b.addEventListener("click", () => act(a, e));
    return b;
  });
  const history = h("button", { type: "button", class: "button", "data-action": "history" }, ["审核记录"]);
  const log = h("ol", { class: "meta history", hidden: "" }, []);
  history.addEventListener("click", async () => {
    try {
      const data = await api("GET", `/api/credit-entries/${e.id}/decisions`);
      log.replaceChildren(...(data.items.length
        ? data.items.map((/** @type {any} */ d) => h("li", {}, [`${when(d.decided_at)} ${d.decided_by_name || ""}（${ROLE[d.decided_as] || d.decided_as}）${ACTION[d.action] || d.action}${d.reason ? `：${d.reason}` : ""}`]))
        : [h("li", {}, ["尚无审核记录。"])]));
      log.hidden = false;
    } catch (err) {
      showError(err);
    }
  });
  parts.push(h("div", { class: "actions" }, [...buttons, history]), log);
  return h("li", { "data-entry": String(e.id), "data-status": e.status }, parts);
}

/**
 * Ask for a reason (required for reject, revoke, override; a note for approve) in the page's dialog.
 * @param {Pending} p
 * @returns {Promise<string | null>} the reason, or null when cancelled
 */
function askReason(p) {
  const dialog = /** @type {HTMLDialogElement} */ ($("#reason-dialog"));
  const field = /** @type {HTMLTextAreaElement} */ ($("#reason"));
  const error = $("#reason-error");
  const required = p.action !== "approve";
  $("#reason-title").textContent = `${ACTION[p.action]}：${required ? "填写理由" : "确认"}`;
  $("#reason-what").textContent = p.what;
  field.value = "";
  field.oninput = () => { error.hidden = true; };
  field.placeholder = required ? "理由（必填，学员可以看到）" : "备注（选填）";
  error.hidden = true;
  return new Promise((resolve) => {
    /** @param {Event} ev */
    const onSubmit = (ev) => {
      const submitter = /** @type {SubmitEvent} */ (ev).submitter;
      if (submitter instanceof HTMLButtonElement && submitter.value === "cancel") return;
      if (required && !field.value.trim()) {
        ev.preventDefault();
        error.textContent = "请填写理由。";
        error.hidden = false;
      }
    };
    const form = /** @type {HTMLFormElement} */ (dialog.querySelector("form"));
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", () => {
      form.removeEventListener("submit", onSubmit);
      resolve(dialog.returnValue === "ok" ? field.value.trim() : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    field.focus();
  });
}

/** @param {any} me */
function queues(me) {
  /** @type {[string, string][]} */
  const out = [];
  for (const r of me.roles || []) {
    if (r.role === "employer_admin" && r.org_id != null) out.push([`employer:${r.org_id}`, `${r.org_name || "本单位"}的员工`]);
  }
  const hrss = (me.roles || []).some((/** @type {any} */ r) => r.role === "bureau");
  if (hrss || hasRole(me, "admin")) {
    out.push(["unaffiliated", "无工作单位的学员（人社部门审核）"]);
    out.push(["employer_admins", "单位管理员本人学时（人社部门可审核）"]);
  }
  return out;
}

/** @param {View} v */
function listPath(v) {
  /** @type {Record<string, string>} */
  const bureauQueues = { unaffiliated: "/api/credit-entries/unaffiliated", employer_admins: "/api/credit-entries/employer-admins" };
  const base = bureauQueues[v.queue] || `/api/employers/${v.queue.split(":")[1]}/credit-entries`;
  const q = new URLSearchParams({ status: v.status, page: String(v.page), page_size: String(PAGE_SIZE) });
  if (v.year) q.set("year", v.year);
  return `${base}?${q}`;
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const choices = queues(me);
  if (!choices.length) {
    say("只有单位管理员和人社部门可以审核学时。", "error");
    $("#filters").hidden = true;
    return;
  }
  const queueSelect = /** @type {HTMLSelectElement} */ ($("#queue"));
  queueSelect.replaceChildren(...choices.map(([value, label]) => h("option", { value }, [label])));
  const statusSelect = /** @type {HTMLSelectElement} */ ($("#status"));
  const yearSelect = /** @type {HTMLSelectElement} */ ($("#year"));
  const thisYear = new Date().getFullYear();
  yearSelect.replaceChildren(h("option", { value: "" }, ["全部年度"]), ...[0, 1, 2].map((n) => h("option", { value: String(thisYear - n) }, [`${thisYear - n} 年`])));
  const params = new URLSearchParams(location.search);
  if (params.get("status") && [...statusSelect.options].some((o) => o.value === params.get("status"))) statusSelect.value = String(params.get("status"));

  /** @type {View} */
  const view = { queue: queueSelect.value, status: statusSelect.value, year: "", page: 1 };
  /** @type {Set<number>} */
  const picked = new Set();
  /** @type {any[]} */
  let shown = [];
  const approveAll = /** @type {HTMLButtonElement} */ ($("#approve-selected"));
  const rejectAll = /** @type {HTMLButtonElement} */ ($("#reject-selected"));
  const selectAll = /** @type {HTMLInputElement} */ ($("#select-all"));

  const refreshBulk = () => {
    $("#selected-count").textContent = `已选 ${picked.size} 条`;
    approveAll.disabled = rejectAll.disabled = picked.size === 0;
    const pickable = shown.filter((e) => e.actions.includes("approve"));
    selectAll.checked = pickable.length > 0 && pickable.every((e) => picked.has(e.id));
    $("#bulk").hidden = pickable.length === 0;
  };

  /**
   * @param {Pending} p
   * @param {HTMLButtonElement | null} button
   */
  const run = async (p, button) => {
    const reason = await askReason(p);
    if (reason === null) return;
    const done = button ? busy(button, "正在提交…") : () => {};
    try {
      if (p.action === "approve" || p.action === "reject") {
        /** @type {Record<string, unknown>} */
        const body = { entry_ids: p.ids, action: p.action };
        if (reason) body.reason = reason;
        await api("POST", "/api/credit-entries/decisions", body);
      } else {
        await api("POST", `/api/credit-entries/${p.ids[0]}/${p.action}`, { reason });
      }
      say(`已${ACTION[p.action]} ${p.ids.length} 条学时。`, "ok");
      for (const id of p.ids) picked.delete(id);
      await load();
    } catch (err) {
      showError(err);
    } finally {
      done();
    }
  };

  /** @param {string} action @param {any} e */
  const act = (action, e) => {
    const what = `${e.name} · ${e.course_title} · ${Number(e.xueshi)} 学时`;
    const button = /** @type {HTMLButtonElement | null} */ (document.querySelector(`li[data-entry="${e.id}"] button[data-action="${action}"]`));
    run({ action, ids: [e.id], what }, button).catch(showError);
  };
  /** @param {number} id @param {boolean} on */
  const pick = (id, on) => {
    if (on) picked.add(id);
    else picked.delete(id);
    refreshBulk();
  };

  const load = async () => {
    const data = await api("GET", listPath(view));
    shown = data.items;
    const visible = new Set(shown.map((e) => e.id));
    for (const id of [...picked]) if (!visible.has(id)) picked.delete(id);
    $("#entries").replaceChildren(...(shown.length
      ? shown.map((e) => entryItem(e, act, pick, picked))
      : [h("li", { class: "empty" }, [view.status === "pending" ? "没有待审核的学时。" : "没有符合条件的学时。"])]));
    const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    $("#summary").textContent = `共 ${data.total} 条`;
    $("#page").textContent = `第 ${view.page} / ${pages} 页`;
    /** @type {HTMLButtonElement} */ ($("#prev")).disabled = view.page <= 1;
    /** @type {HTMLButtonElement} */ ($("#next")).disabled = view.page >= pages;
    refreshBulk();
  };
  const reload = () => { load().catch(showError); };

  selectAll.addEventListener("change", () => {
    for (const e of shown) if (e.actions.includes("approve")) (selectAll.checked ? picked.add(e.id) : picked.delete(e.id));
    for (const box of document.querySelectorAll("#entries input.pick")) /** @type {HTMLInputElement} */ (box).checked = selectAll.checked;
    refreshBulk();
  });
  /** @param {string} action @param {HTMLButtonElement} button */
  const bulk = (action, button) => {
    const ids = [...picked];
    const total = shown.filter((e) => picked.has(e.id)).reduce((n, e) => n + Number(e.xueshi), 0);
    run({ action, ids, what: `所选 ${ids.length} 条学时，共 ${total} 学时` }, button).catch(showError);
  };
  approveAll.addEventListener("click", () => bulk("approve", approveAll));
  rejectAll.addEventListener("click", () => bulk("reject", rejectAll));
  for (const select of [queueSelect, statusSelect, yearSelect]) {
    select.addEventListener("change", () => {
      view.queue = queueSelect.value;
      view.status = statusSelect.value;
      view.year = yearSelect.value;
      view.page = 1;
      picked.clear();
      reload();
    });
  }
  $("#prev").addEventListener("click", () => { view.page = Math.max(1, view.page - 1); reload(); });
  $("#next").addEventListener("click", () => { view.page += 1; reload(); });
  await load();
}

init().catch((err) => sayError(err));
