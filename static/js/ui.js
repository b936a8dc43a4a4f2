// @ts-check
/** Page helpers shared by every page: the header's login state, messages, formatting. */
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
 * Show a status or error line in the page's message area.
 * @param {string} text
 * @param {"info" | "error" | "ok"} [kind]
 */
export function say(text, kind = "info") {
  const box = document.getElementById("message");
  if (!box) return;
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = !text;
}

/** @param {unknown} err */
export function sayError(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) {
      say("请先登录。", "error");
      return;
    }
    say(err.message || "操作失败", "error");
  } else {
    say("网络错误，请稍后重试。", "error");
  }
}

/** @type {Record<string, string>} */
export const CATEGORY = { public: "公需科目", professional: "专业科目" };
/** @type {Record<string, string>} */
export const DELIVERY = { live: "直播", recorded: "录播", external: "外部会议", offline: "线下" };
/** @type {Record<string, string>} */
export const STATUS = { draft: "草稿", published: "已发布", archived: "已归档" };

/**
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function when(iso) {
  if (!iso) return "待定";
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

/**
 * The logged-in person, or null; also renders the header's login state.
 * @returns {Promise<any>}
 */
export async function whoami() {
  const nav = document.getElementById("nav");
  let me = null;
  try {
    me = await api("GET", "/api/me");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  if (me && me.csrf_token) rememberCsrf(me.csrf_token);
  if (nav) {
    nav.replaceChildren(h("a", { href: "/courses" }, ["课程目录"]));
    if (me) {
      const roles = new Set((me.roles || []).map((/** @type {{role: string}} */ r) => r.role));
      nav.append(h("a", { href: "/me" }, ["我的学习"]));
      if (roles.has("provider_admin")) nav.append(h("a", { href: "/provider" }, ["机构后台"]));
      const out = h("a", { href: "#", id: "logout" }, ["退出"]);
      out.addEventListener("click", async (ev) => {
        ev.preventDefault();
        await api("POST", "/api/auth/logout");
        rememberCsrf("");
        location.href = "/";
      });
      nav.append(h("span", { class: "who" }, [me.person?.name || ""]), out);
    } else {
      nav.append(h("a", { href: "/login" }, ["登录"]), h("a", { href: "/register" }, ["注册"]));
    }
  }
  return me;
}
