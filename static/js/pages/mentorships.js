// @ts-check
/**
 * 师承带徒: the caller's mentorship agreements as mentor and as mentee (confirm, withdraw, record and
 * confirm completion) and a form to propose one (docs/programme.md).
 */
import { api, ApiError } from "../api.js";
import { $, busy, errorText, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const STATE = { proposed: "待确认", confirmed: "已生效", completed: "已结业", cancelled: "已撤回" };

/**
 * The API's refusals in Chinese (the shared table in ui.js covers the common ones).
 * @param {unknown} err
 */
function text(err) {
  if (!(err instanceof ApiError)) return errorText(err);
  const m = err.message;
  if (/self-mentoring/.test(m)) return "不能与自己签订带徒协议。";
  if (err.details && err.details.reason === "mentor_cap") {
    return `该导师 ${err.details.year} 年已有 ${err.details.mentees} 名学员（含待确认的协议），达到每年 ${err.details.cap} 名的上限。`;
  }
  if (/^no (learner|expert) with this id and name/.test(m)) return "没有找到该编号和姓名的人员，请向对方核对编号和姓名。";
  if (/already exists/.test(m)) return "你们在该年度已有一份协议。";
  if (/other side confirms/.test(m)) return "协议须由对方确认。";
  if (/after the end date/.test(m)) return "协议期满后才能填写结业总结。";
  if (/only experts propose/.test(m)) return "只有专家可以作为导师发起协议。";
  if (/only learners propose/.test(m)) return "只有学员账号可以作为学员发起协议。";
  if (/must lie in/.test(m)) return "开始和结束日期须在协议年度之内。";
  if (/must not be before start_date/.test(m)) return "结束日期不能早于开始日期。";
  if (/has not recorded completion/.test(m)) return "导师尚未填写结业总结。";
  if (/cannot be (confirmed|cancelled)/.test(m)) return "协议状态已变化，请刷新页面。";
  return errorText(err);
}

/** @param {unknown} err @param {HTMLElement | null} [box] */
function fail(err, box = document.getElementById("message")) {
  if (err instanceof ApiError && (err.status === 401 || err.field === "X-CSRF-Token")) {
    sayError(err, box);
    return;
  }
  say(text(err), "error", box);
}

// Credit years and dates are Beijing's.
const today = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(new Date());
const thisYear = Number(today.slice(0, 4));

/**
 * A button that calls the API and reloads.
 * @param {string} label @param {string} path @param {() => void} reload @param {unknown} [body]
 */
function action(label, path, reload, body) {
  const button = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, [label]));
  button.addEventListener("click", async () => {
    const done = busy(button, "正在提交…");
    try {
      await api("POST", path, typeof body === "function" ? body() : body);
      say("已提交。", "ok");
      reload();
    } catch (err) {
      fail(err);
    } finally {
      done();
    }
  });
  return button;
}

/**
 * One agreement with what the caller may do with it now.
 * @param {any} m @param {() => void} reload
 */
function agreement(m, reload) {
  const other = m.my_side === "mentor" ? `学员 ${m.mentee.name}` : `导师 ${m.mentor.name}`;
  const path = `/api/mentorships/${m.id}`;
  const parts = [
    h("h3", {}, [`${other} · ${m.year} 年 `, h("span", { class: `badge state-${m.status}` }, [STATE[m.status] || m.status])]),
    h("div", { class: "meta" }, [
      h("span", {}, [`${m.start_date} 至 ${m.end_date}`]),
      h("span", {}, [`${m.proposed_by === "mentor" ? "导师" : "学员"}于 ${when(m.proposed_at)} 发起`]),
      h("span", {}, [m.mentor_confirmed_at ? `导师确认 ${when(m.mentor_confirmed_at)}` : "导师未确认"]),
      h("span", {}, [m.mentee_confirmed_at ? `学员确认 ${when(m.mentee_confirmed_at)}` : "学员未确认"]),
    ]),
    h("details", {}, [
      h("summary", {}, ["培养计划与协议条款"]),
      h("p", { class: "text" }, [m.plan]),
      h("p", { class: "text" }, [m.terms]),
    ]),
  ];
  if (m.completion_summary) parts.push(h("p", { class: "text" }, [`结业总结：${m.completion_summary}`]));
  const buttons = [];
  const mine = m.waiting_for === m.my_side;
  if (m.status === "proposed") {
    if (mine) buttons.push(action("确认协议", `${path}/confirm`, reload));
    else parts.push(h("p", { class: "hint" }, ["等待对方确认。"]));
    buttons.push(action(mine ? "拒绝" : "撤回", `${path}/cancel`, reload));
  } else if (m.status === "confirmed" && m.my_side === "mentor" && !m.completed_at) {
    if (today > m.end_date) {
      const summary = /** @type {HTMLTextAreaElement} */ (h("textarea", { rows: "3", maxlength: "5000", placeholder: "结业总结：培养成果、完成情况" }));
      parts.push(summary);
      buttons.push(action("提交结业总结", `${path}/completion`, reload, () => ({ summary: summary.value })));
    } else {
      parts.push(h("p", { class: "hint" }, [`协议期满（${m.end_date} 之后）可填写结业总结。`]));
    }
  } else if (m.status === "confirmed" && m.completed_at) {
    if (m.my_side === "mentee") buttons.push(action("确认结业", `${path}/completion/confirm`, reload));
    else parts.push(h("p", { class: "hint" }, ["已提交结业总结，等待学员确认。"]));
  } else if (m.status === "completed") {
    parts.push(h("p", { class: "hint" }, ["已结业：学时已计入学员名下，待工作单位审核认定。"]));
  }
  if (buttons.length) parts.push(h("div", { class: "actions" }, buttons));
  return h("li", { class: "agreement", "data-mentorship": String(m.id) }, parts);
}

/** @param {any} me */
async function init(me) {
  $("#my-id").textContent = String(me.person.id);
  const isExpert = hasRole(me, "expert");
  const isLearner = hasRole(me, "learner");
  if (!isExpert && !isLearner) {
    say("师承带徒协议由专家（导师）和学员双方签订；您的账号两者都不是。", "error");
    $("#propose").hidden = true;
  }
  const yearSelect = /** @type {HTMLSelectElement} */ ($("#year"));
  const form = /** @type {HTMLFormElement} */ ($("#propose"));
  const formYear = /** @type {HTMLSelectElement} */ (form.elements.namedItem("year"));
  for (const y of [thisYear + 1, thisYear, thisYear - 1]) {
    yearSelect.append(h("option", { value: String(y) }, [`${y} 年`]));
    formYear.append(h("option", { value: String(y) }, [`${y} 年`]));
  }
  yearSelect.value = String(thisYear);
  formYear.value = String(thisYear);
  const side = /** @type {HTMLSelectElement} */ (form.elements.namedItem("side"));
  if (isExpert) side.append(h("option", { value: "mentor" }, ["我是导师（带徒）"]));
  if (isLearner) side.append(h("option", { value: "mentee" }, ["我是学员（拜师）"]));
  /** @type {HTMLInputElement} */ (form.elements.namedItem("start_date")).value = today;
  /** @type {HTMLInputElement} */ (form.elements.namedItem("end_date")).value = `${thisYear}-12-31`;

  const load = async () => {
    const data = await api("GET", `/api/me/mentorships?year=${yearSelect.value}`);
    const reload = () => { load().catch((err) => fail(err)); };
    $("#cap").textContent = String(data.mentor_cap);
    $("#award").textContent = String(Number(data.award_xueshi));
    $("#mentor-section").hidden = !isExpert && !data.as_mentor.length;
    $("#mentee-section").hidden = !isLearner && !data.as_mentee.length;
    $("#places").textContent = `（${data.places_held} / ${data.mentor_cap} 名）`;
    const empty = () => h("li", { class: "empty" }, ["本年度没有协议。"]);
    $("#as-mentor").replaceChildren(...(data.as_mentor.length ? data.as_mentor.map((/** @type {any} */ m) => agreement(m, reload)) : [empty()]));
    $("#as-mentee").replaceChildren(...(data.as_mentee.length ? data.as_mentee.map((/** @type {any} */ m) => agreement(m, reload)) : [empty()]));
  };
  yearSelect.addEventListener("change", () => { load().catch((err) => fail(err)); });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("#propose-message");
    const data = new FormData(form);
    const field = (/** @type {string} */ name) => String(data.get(name) || "").trim();
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
    const done = busy(button, "正在提交…");
    try {
      await api("POST", "/api/mentorships", {
        side: field("side"),
        counterpart_id: Number(field("counterpart_id")),
        counterpart_name: field("counterpart_name"),
        year: Number(field("year")),
        start_date: field("start_date"),
        end_date: field("end_date"),
        plan: field("plan"),
        terms: field("terms"),
      });
      say("协议已发起，等待对方确认。", "ok", box);
      yearSelect.value = field("year");
      await load();
    } catch (err) {
      fail(err, box);
    } finally {
      done();
    }
  });
  await load();
}

requireLogin()
  .then((me) => (me ? init(me) : undefined))
  .catch((err) => fail(err));
