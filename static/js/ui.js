// @ts-check
/** Page helpers shared by every page: the header's login state, messages in Chinese, formatting. */
import { api, ApiError, rememberCsrf } from "./api.js";

/**
 * @param {string} selector
 * @returns {HTMLElement}
 */
export function $(selector) {
  const el = document.querySelector(selector);
  if (!(el instanceof HTMLElement)) throw new Error(`missing element ${selector}`);
  return el;
}

/**
 * Build an element with text content (never innerHTML with data: no injection).
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(string | Node)[]} [children]
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

/**
 * Show a status or error line in the page's message area ("" hides it).
 * @param {string} text
 * @param {"info" | "error" | "ok"} [kind]
 * @param {HTMLElement | null} [box] another message area than #message
 */
export function say(text, kind = "info", box = document.getElementById("message")) {
  if (!box) return;
  box.textContent = text;
  box.className = `message ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = !text;
}

/** Chinese names of the API's fields, for error messages. @type {Record<string, string>} */
export const FIELD = {
  phone: "手机号",
  password: "密码",
  name: "姓名",
  employer_id: "工作单位",
  title: "名称",
  description: "简介",
  category: "科目类别",
  delivery: "授课形式",
  credit_hours: "学时",
  industry: "行业",
  specialty_tags: "专业标签",
  capacity: "容量",
  provider_id: "所属机构",
  kind: "课次类型",
  scheduled_start: "开始时间",
  scheduled_end: "结束时间",
  external_platform: "会议平台",
  external_ids: "会议号",
  location: "上课地点",
  person_ids: "授课专家",
  expert_ids: "授课专家",
  course_id: "课程",
  session_id: "课次",
  q: "搜索词",
  sort: "排序方式",
  page: "页码",
  page_size: "每页条数",
  from: "开始日期",
  to: "结束日期",
};

/**
 * The API's messages are English; learners read Chinese. Known messages by pattern, then by code.
 * @type {[RegExp, (m: RegExpMatchArray, label: string, err: ApiError) => string][]}
 */
const MESSAGES = [
  [/phone number is already registered/, () => "该手机号已注册，请直接登录。"],
  [/wrong phone number or password/, () => "手机号或密码错误。"],
  [/too many failed logins/, (_m, _l, err) => {
    const s = Number(err.details?.retry_after_s) || 900;
    return `登录失败次数过多，请 ${Math.ceil(s / 60)} 分钟后再试。`;
  }],
  [/X-CSRF-Token/i, () => "登录状态已失效，请重新登录。"],
  [/only learners enroll/, () => "只有学员账号可以报名课程。"],
  [/the course is full/, () => "该课程名额已满。"],
  [/enrollment is open only for published/, () => "课程尚未发布，暂不能报名。"],
  [/not enrolled in this course/, () => "您没有报名该课程。"],
  [/cannot publish a course/, () => "只有草稿状态的课程可以发布。"],
  [/cannot archive a course/, () => "该课程已归档。"],
  [/archived/, () => "课程已归档，不能再修改。"],
  [/only the provider's administrators/, () => "只有本机构的管理员可以执行此操作。"],
  [/not experts: (.*)/, (m) => `以下人员不是专家：${m[1]}。`],
  [/must be a mainland mobile number/, () => "请输入 11 位大陆手机号（1 开头）。"],
  [/must be after the start/, () => "结束时间必须晚于开始时间。"],
  [/external sessions need an external_platform/, () => "外部会议课次须选择会议平台；其他类型的课次不选平台。"],
  [/an offline session needs a location/, () => "线下课次须填写上课地点。"],
  [/is in the past$/, (_m, label) => `${label}不能早于当前时间，请重新选择。`],
  [/a live session of a published course needs at least one expert/, () => "已发布课程的直播课次必须指定授课专家。"],
  [/live sessions without an expert cannot be published: (.*)/, (m) => `以下直播课次还没有授课专家：${m[1]}。请先指定专家再发布。`],
  [/a recorded course needs a replay to watch/, () => "录播课程还没有可观看的回放，暂不能发布：请先录制课次，回放生成后再发布。"],
  [/cannot become recorded before it has a replay/, () => "该课程还没有可观看的回放，不能改为录播。"],
  [/this recorded course has nothing to watch yet/, () => "该录播课程暂无可观看的内容，暂不能报名。"],
  [/must be a CE base or a training institution/, () => "只有继续教育基地或培训机构可以开设课程。"],
  [/is required$/, (_m, label) => `请填写${label}。`],
  [/must not be empty/, (_m, label) => `${label}不能为空。`],
  [/must be at least (\d+) characters/, (m, label) => `${label}至少 ${m[1]} 个字符。`],
  [/must be at most (\d+) characters/, (m, label) => `${label}最多 ${m[1]} 个字。`],
  [/allows one decimal place/, (_m, label) => `${label}最多保留一位小数。`],
  [/must be between|must be ≥|must be ≤/, (_m, label) => `${label}超出允许范围。`],
  [/capacity below the (\d+) learners/, (m) => `容量不能少于已报名的 ${m[1]} 人。`],
  [/contains control characters/, (_m, label) => `${label}含有不可见字符。`],
  [/ISO 8601|UTC offset/, (_m, label) => `${label}格式不正确。`],
  [/too early to go live/, (_m, _l, err) => {
    const opens = err.details?.opens_at;
    return `还未到开播时间：计划开始前 30 分钟起可以开始直播${typeof opens === "string" ? `（${when(opens)} 起）` : ""}。`;
  }],
  [/its live room is closed/, () => "本课次已结束，直播间已关闭。"],
  [/no longer admits you/, () => "您已不能进入本课次的直播间（例如已退出该课程）。"],
  [/account is linked to someone else/, () => "该会议账号已由其他人关联；如有疑问，请联系培训机构。"],
];

/** @type {Record<string, string>} */
const BY_CODE = {
  unauthenticated: "请先登录。",
  forbidden: "您没有权限执行此操作。",
  not_found: "内容不存在或尚未发布。",
  conflict: "操作与当前状态冲突，请刷新后重试。",
  session_ended: "本课次已结束，不能再次开始直播。",
  too_early: "还未到开播时间：计划开始前 30 分钟起可以开始直播。",
  course_not_published: "该课程未发布或已归档，课次没有直播间。",
  too_many_requests: "操作过于频繁，请稍后再试。",
  unavailable: "服务暂不可用，请稍后重试。",
  body_too_large: "提交的内容过大。",
};

/**
 * The Chinese text to show for an error from `api()` (or anything else thrown).
 * @param {unknown} err
 * @returns {string}
 */
export function errorText(err) {
  if (!(err instanceof ApiError)) return "网络错误，请检查网络后重试。";
  const label = (err.field && FIELD[err.field]) || "输入内容";
  for (const [pattern, text] of MESSAGES) {
    const m = err.message.match(pattern);
    if (m) return text(m, label, err);
  }
  if (err.status >= 500) return "服务器出错，请稍后重试。";
  if (err.code in BY_CODE) return BY_CODE[err.code];
  if (err.field) return `${label}填写有误。`;
  return "提交的内容有误，请检查后重试。";
}

/**
 * Show an API error in Chinese; a lost login gets a link back to the login page.
 * @param {unknown} err
 * @param {HTMLElement | null} [box]
 */
export function sayError(err, box = document.getElementById("message")) {
  if (!(err instanceof ApiError)) console.error(err);
  say(errorText(err), "error", box);
  const lostLogin = err instanceof ApiError && (err.status === 401 || err.field === "X-CSRF-Token");
  if (lostLogin && box && !location.pathname.startsWith("/login")) {
    const next = encodeURIComponent(location.pathname + location.search);
    box.append(" ", h("a", { href: `/login?next=${next}` }, ["去登录"]));
  }
}

/**
 * Disable a button and show what it is doing until the returned function is called.
 * @param {HTMLButtonElement} button
 * @param {string} text e.g. "正在保存…"
 * @returns {() => void} restores the button
 */
export function busy(button, text) {
  const label = button.textContent || "";
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = text;
  return () => {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  };
}

/** @type {Record<string, string>} */
export const CATEGORY = { public: "公需科目", professional: "专业科目" };
/** @type {Record<string, string>} */
export const DELIVERY = { live: "直播", recorded: "录播", external: "外部会议", offline: "线下" };
/** @type {Record<string, string>} */
export const KIND = { live: "直播", external: "外部会议", offline: "线下" };
/** @type {Record<string, string>} */
export const PLATFORM = { none: "无", tencent: "腾讯会议", dingtalk_conf: "钉钉视频会议", dingtalk_live: "钉钉直播" };
/** @type {Record<string, string>} */
export const STATUS = { draft: "草稿", published: "已发布", archived: "已归档" };
/** @type {Record<string, string>} */
export const SOURCE = { self: "本人报名", employer: "单位报名" };
/** @type {Record<string, string>} */
export const ROLE = {
  learner: "学员",
  expert: "授课专家",
  provider_admin: "机构管理员",
  employer_admin: "单位管理员",
  reviewer: "继教协会审核",
  bureau: "人社部门",
  admin: "系统管理员",
};

/**
 * A session's `status` from the API in words (docs/api.md, "Session state"). Sessions that are not live
 * lectures (offline, external) are "in progress", not "live", while their schedule runs.
 * @param {{ status: string, kind?: string }} session
 * @returns {string}
 */
export function sessionStatusText(session) {
  switch (session.status) {
    case "scheduled": return "未开始";
    case "live": return session.kind && session.kind !== "live" ? "进行中" : "直播中";
    case "ended": return "已结束";
    case "missed": return "未开播（已过计划时间）";
    default: return session.status;
  }
}

/**
 * A tag showing a session's state (`.state-live` etc. in style.css colour it).
 * @param {{ status: string, kind?: string }} session
 * @returns {HTMLElement}
 */
export function statusTag(session) {
  return h("span", { class: `badge state-${session.status}` }, [sessionStatusText(session)]);
}

/**
 * A duration in minutes and seconds, the way people read it: "12分05秒", "45秒", "1小时02分05秒".
 * @param {number} seconds
 * @returns {string}
 */
export function duration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  if (hours) return `${hours}小时${String(minutes).padStart(2, "0")}分${secs}秒`;
  if (minutes) return `${minutes}分${secs}秒`;
  return `${total}秒`;
}

/**
 * Whether the person (GET /api/me) holds `role` in any organization.
 * @param {any} me
 * @param {string} role
 */
export function hasRole(me, role) {
  return Boolean(me) && (me.roles || []).some((/** @type {{role: string}} */ r) => r.role === role);
}

/**
 * Whether the person acts for the HR&SS bureau (人社局: a `bureau` role in an `hrss_bureau` organization) or
 * is an admin: the approval queues, the staff ledgers and the credit rules are theirs. An industry
 * department's staff hold `bureau` too, but oversee their sector's providers only (监管, 待核查).
 * @param {any} me
 */
export function actsForBureau(me) {
  return hasRole(me, "admin") || Boolean(me) && (me.roles || []).some(
    (/** @type {{role: string, org_type: string | null}} */ r) => r.role === "bureau" && r.org_type === "hrss_bureau",
  );
}

/**
 * Where a person starts after logging in: the home of their main role (a reviewer: 课件审核). Roles with
 * several pages (employer, bureau, admin) start on the landing page, which links each of them.
 * @param {any} me
 * @returns {string}
 */
export function homeOf(me) {
  if (hasRole(me, "expert")) return "/teach";
  if (hasRole(me, "provider_admin")) return "/provider";
  if (hasRole(me, "learner")) return "/me";
  if (hasRole(me, "reviewer")) return "/review/courseware";
  return "/";
}

// Lectern serves Qingdao: times are shown, and typed, in Beijing time whatever the device's zone.
const ZONE = "Asia/Shanghai";
const FORMAT = new Intl.DateTimeFormat("zh-CN", {
  timeZone: ZONE,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

/**
 * An instant from the API, in Beijing time.
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function when(iso) {
  if (!iso) return "待定";
  return FORMAT.format(new Date(iso));
}

/**
 * A `datetime-local` value, read as Beijing time, as the ISO instant the API expects.
 * @param {string} value e.g. "2026-12-01T09:00"
 * @returns {string} e.g. "2026-12-01T09:00:00+08:00"
 */
export function beijingInstant(value) {
  return `${value.length === 16 ? `${value}:00` : value}+08:00`;
}

/**
 * Make the header's navigation match the login state.
 * @param {any} me the answer of GET /api/me, or null
 */
function renderNav(me) {
  const nav = document.getElementById("nav");
  if (!nav) return;
  /** @type {HTMLElement[]} */
  const links = [h("a", { href: "/courses" }, ["课程目录"])];
  // Anonymous visitors see 我的学习 (it asks them to log in); logged-in people see the homes they have.
  if (!me || hasRole(me, "learner")) links.push(h("a", { href: "/me" }, ["我的学习"]));
  if (me && hasRole(me, "learner")) links.push(h("a", { href: "/me/credits" }, ["我的学时"]));
  if (me) {
    if (hasRole(me, "expert")) links.push(h("a", { href: "/teach" }, ["我的授课"]));
    if (hasRole(me, "expert")) links.push(h("a", { href: "/teach/courseware" }, ["我的课件"]));
    if (hasRole(me, "reviewer")) links.push(h("a", { href: "/review/courseware" }, ["课件审核"]));
    if (hasRole(me, "provider_admin")) links.push(h("a", { href: "/provider" }, ["机构后台"]));
    if (hasRole(me, "expert") || hasRole(me, "learner")) links.push(h("a", { href: "/mentorships" }, ["师承带徒"]));
    if (hasRole(me, "employer_admin")) links.push(h("a", { href: "/employer/plans" }, ["年度培训计划"]));
    if (["provider_admin", "bureau", "admin"].some((r) => hasRole(me, r))) links.push(h("a", { href: "/review" }, ["待核查"]));
    if (hasRole(me, "employer_admin") || actsForBureau(me)) links.push(h("a", { href: "/employer" }, [hasRole(me, "employer_admin") ? "单位审核" : "学时审核"]));
    if (hasRole(me, "employer_admin") || actsForBureau(me)) links.push(h("a", { href: "/employer/staff" }, ["学时台账"]));
    if (actsForBureau(me)) links.push(h("a", { href: "/admin/credit-policy" }, ["学时规则"]));
    if (hasRole(me, "bureau") || hasRole(me, "admin")) links.push(h("a", { href: "/supervision" }, ["监管"]));
    const out = h("a", { href: "#", id: "logout" }, ["退出"]);
    out.addEventListener("click", async (ev) => {
      ev.preventDefault();
      try {
        await api("POST", "/api/auth/logout");
      } catch (err) {
        // Without a CSRF token the server cannot end the session; say so instead of pretending.
        sayError(err);
        return;
      }
      rememberCsrf("");
      location.href = "/";
    });
    links.push(h("span", { class: "who" }, [me.person?.name || ""]), out);
  } else {
    links.push(h("a", { href: "/login" }, ["登录"]));
  }
  for (const a of links) {
    if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
  }
  nav.replaceChildren(...links);
}

/**
 * The logged-in person ({person, roles}), or null; also renders the header's login state.
 * @returns {Promise<any>}
 */
export async function whoami() {
  let me = null;
  try {
    me = await api("GET", "/api/me");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  renderNav(me);
  return me;
}

/** Send the visitor to the login page, coming back to this page afterwards. */
export function goToLogin() {
  location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
}

/**
 * The logged-in person for a page that needs one; otherwise off to the login page (resolves null).
 * @returns {Promise<any>}
 */
export async function requireLogin() {
  const me = await whoami().catch(() => null);
  if (!me) goToLogin();
  return me;
}
