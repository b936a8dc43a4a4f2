// @ts-check
/**
 * 学时规则 (admins edit, the bureau reads): the credit policy in force, its history, and a form that
 * creates a new version. Credit already computed keeps the version it names.
 */
import { api, ApiError } from "../api.js";
import { $, busy, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

/**
 * Each parameter: its label, the input type, and how to read the input back ("int", "float",
 * "decimal" (sent as a string), "bool", or the choices of a select).
 * @type {[string, string, string | Record<string, string>, string?][]}
 */
const FIELDS = [
  ["minutes_per_xueshi", "每学时分钟数", "int"],
  ["rounding_unit", "学时取整单位", { "0.1": "0.1 学时", "0.25": "0.25 学时", "0.5": "0.5 学时", "1": "1 学时" }],
  ["daily_cap_xueshi", "每日学时上限", "decimal"],
  ["live_presence_threshold", "直播出勤比例要求（0–1）", "float"],
  ["live_below_threshold", "出勤不足时", { none: "不计学时", pro_rata: "按比例计" }],
  ["check_full_ratio", "签到应答率：全额（0–1）", "float"],
  ["check_half_ratio", "签到应答率：减半（0–1）", "float"],
  ["checks_per_45_min", "每45分钟签到次数（回放）", "int"],
  ["check_window_s", "签到应答时限（秒）", "int"],
  ["min_answer_ms", "最短应答时间（毫秒，更快视为脚本）", "int"],
  ["replay_completion_threshold", "回放完成比例（0–1）", "float"],
  ["max_playback_rate", "计时的最高播放倍速", "float"],
  ["seek_tolerance_s", "进度误差容忍（秒）", "float"],
  ["heartbeat_period_s", "心跳周期（秒）", "int"],
  ["once_per_session_per_year", "同一课次每年只计一次", "bool"],
  ["annual_total_xueshi", "年度总学时要求", "decimal"],
  ["annual_public_min_xueshi", "公需科目最低学时", "decimal"],
  ["annual_professional_min_xueshi", "专业科目最低学时", "decimal"],
  ["approval_min_seconds", "审核过快提示阈值（秒，发布后多久内审核需核查）", "int"],
  ["approval_bulk_flag_size", "批量审核提示阈值（条）", "int"],
  ["mentor_cap", "每位导师每年最多带徒人数", "int"],
  ["mentorship_award_xueshi", "师承带徒完成后学时", "decimal"],
  ["offline_code_period_s", "线下签到码刷新周期（秒）", "int"],
  ["offline_code_valid_s", "线下签到码有效期（秒）", "int"],
];
/** @type {Record<string, string>} */
const LABEL = Object.fromEntries([...FIELDS.map(([k, l]) => [k, l]), ["note", "修改说明"]]);

/** @param {unknown} v */
function shown(v) {
  if (v === true) return "是";
  if (v === false) return "否";
  return String(v);
}

/** @param {Record<string, unknown>} params */
function paramRows(params) {
  return FIELDS.flatMap(([k, label, kind]) => {
    const v = params[k];
    const text = typeof kind === "object" ? kind[String(v)] || shown(v) : shown(v);
    return [h("span", {}, [label]), h("strong", { "data-param": k }, [text])];
  });
}

/**
 * @param {HTMLFormElement} form
 * @param {Record<string, unknown>} params
 */
function buildForm(form, params) {
  const inputs = FIELDS.map(([k, label, kind]) => {
    /** @type {HTMLElement} */
    let input;
    if (typeof kind === "object") {
      input = h("select", { name: k }, Object.entries(kind).map(([v, text]) => h("option", { value: v }, [text])));
      /** @type {HTMLSelectElement} */ (input).value = String(params[k]);
    } else if (kind === "bool") {
      input = h("input", { name: k, type: "checkbox" });
      /** @type {HTMLInputElement} */ (input).checked = Boolean(params[k]);
      return h("label", { class: "check" }, [input, label]);
    } else {
      input = h("input", { name: k, type: "number", step: "any", required: "" });
      /** @type {HTMLInputElement} */ (input).value = String(params[k]);
    }
    return h("label", {}, [label, input]);
  });
  const note = h("label", {}, ["修改说明（必填）", h("textarea", { name: "note", rows: "2", maxlength: "500", required: "" })]);
  const submit = h("button", { class: "button primary", type: "submit" }, ["保存为新版本"]);
  form.replaceChildren(...inputs, note, submit);
}

/** @param {HTMLFormElement} form */
function readForm(form) {
  /** @type {Record<string, unknown>} */
  const body = {};
  for (const [k, , kind] of FIELDS) {
    const el = /** @type {HTMLInputElement} */ (form.elements.namedItem(k));
    if (kind === "bool") body[k] = el.checked;
    else if (kind === "int") body[k] = Number.isInteger(Number(el.value)) && el.value !== "" ? Number(el.value) : el.value;
    else if (kind === "float") body[k] = el.value === "" || Number.isNaN(Number(el.value)) ? el.value : Number(el.value);
    else body[k] = el.value;
  }
  body.note = /** @type {HTMLTextAreaElement} */ (form.elements.namedItem("note")).value.trim();
  return body;
}

/** @param {any} v a version */
function historyItem(v) {
  return h("li", { "data-version": String(v.version) }, [
    h("h3", {}, [`版本 ${v.version}`]),
    h("div", { class: "meta" }, [h("span", {}, [v.created_at ? when(v.created_at) : "系统内置"]), h("span", {}, [v.note])]),
    h("details", {}, [h("summary", {}, ["规则明细"]), h("div", { class: "params" }, paramRows(v.params))]),
  ]);
}

/** @param {any} me */
async function load(me) {
  const current = await api("GET", "/api/credit-policy");
  $("#current-version").textContent = `（版本 ${current.version}${current.version === 0 ? "，系统内置" : ""}）`;
  $("#current").replaceChildren(...paramRows(current.params));
  const history = await api("GET", "/api/credit-policy/versions");
  $("#history").replaceChildren(...history.items.map(historyItem));
  if (hasRole(me, "admin")) buildForm(/** @type {HTMLFormElement} */ ($("#policy-form")), current.params);
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const admin = hasRole(me, "admin");
  if (!admin && !hasRole(me, "bureau")) {
    say("只有系统管理员和人社部门可以查看学时规则。", "error");
    return;
  }
  $("#edit").hidden = !admin;
  $("#read-only").hidden = admin;
  await load(me);
  const form = /** @type {HTMLFormElement} */ ($("#policy-form"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const done = busy(/** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]")), "正在保存…");
    try {
      const created = await api("POST", "/api/credit-policy", readForm(form));
      await load(me);
      say(`已保存为版本 ${created.version}。已计算的学时不受影响。`, "ok");
    } catch (err) {
      if (err instanceof ApiError && err.field) {
        const el = form.elements.namedItem(err.field);
        if (el instanceof HTMLElement) el.setAttribute("aria-invalid", "true");
        say(`${LABEL[err.field] || err.field}：取值不正确（${err.message}）`, "error");
      } else {
        sayError(err);
      }
    } finally {
      done();
    }
  });
}

init().catch((err) => sayError(err));
