// @ts-check
/** Log-in and registration pages: checks in Chinese before anything is sent, then the API's verdict. */
import { api, rememberCsrf } from "../api.js";
import { $, busy, h, homeOf, say, sayError, whoami } from "../ui.js";

const PHONE = /^1[3-9]\d{9}$/;
const PASSWORD_MIN = 8;

/** @param {FormData} data @param {string} name */
function field(data, name) {
  return String(data.get(name) || "").trim();
}

/** Where the person came from (only same-site paths), or "" when they came to log in. */
function cameFrom() {
  const target = new URLSearchParams(location.search).get("next") || "";
  return target.startsWith("/") && !target.startsWith("//") ? target : "";
}

/** After login: back where the person came from, else to the home of their role (ui.homeOf). */
async function landing() {
  const back = cameFrom();
  if (back) return back;
  try {
    return homeOf(await api("GET", "/api/me"));
  } catch {
    return "/me";
  }
}

/**
 * What is wrong with the form, in Chinese, or "" when it may be sent.
 * @param {FormData} data
 * @param {string | undefined} mode
 */
function problem(data, mode) {
  if (mode === "register" && !field(data, "name")) return "请填写姓名。";
  if (!PHONE.test(field(data, "phone"))) return "请输入 11 位大陆手机号（1 开头）。";
  const password = String(data.get("password") || "");
  if (mode === "register") {
    if (password.length < PASSWORD_MIN) return `密码至少 ${PASSWORD_MIN} 位。`;
    if (password !== String(data.get("password2") || "")) return "两次输入的密码不一致。";
  } else if (!password) {
    return "请输入密码。";
  }
  return "";
}

const form = /** @type {HTMLFormElement} */ ($("form"));
const mode = form.dataset.mode;
const button = /** @type {HTMLButtonElement} */ ($("button[type=submit]"));
whoami().catch(() => undefined);

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const wrong = problem(data, mode);
  if (wrong) {
    say(wrong, "error");
    return;
  }
  const phone = field(data, "phone");
  const password = String(data.get("password") || "");
  const done = busy(button, mode === "register" ? "正在注册…" : "正在登录…");
  say("");
  try {
    if (mode === "register") {
      await api("POST", "/api/auth/register", { name: field(data, "name"), phone, password });
    }
    const res = await api("POST", "/api/auth/login", { phone, password });
    rememberCsrf(res.csrf_token || "");
    say(mode === "register" ? "注册成功，正在进入…" : "登录成功，正在跳转…", "ok");
    location.href = await landing();
  } catch (err) {
    sayError(err);
    if (mode === "register" && /** @type {any} */ (err).field === "phone" && /** @type {any} */ (err).status === 409) {
      $("#message").append(" ", h("a", { href: `/login?next=${encodeURIComponent(cameFrom() || "/me")}` }, ["去登录"]));
    }
    done();
  }
});
