// @ts-check
/** Log-in and registration pages: checks in Chinese before anything is sent, then the API's verdict. */
import { api, ApiError, rememberCsrf } from "../api.js";
import { $, busy, h, homeOf, say, sayError, whoami } from "../ui.js";

const PHONE = /^1[3-9]\d{9}$/;
const PASSWORD_MIN = 8;

/** @param {FormData} data @param {string} name */
function field(data, name) {
  return String(data.get(name) || "").trim();
}

/**
 * `target` if it is a path on this site, else "". Only "/" followed by anything but "/" or a backslash:
 * browsers read "//host/..." and "/\host/..." as another site. No backslash or control character anywhere
 * either: browsers drop tabs and newlines from URLs, so "/", a tab, "/host" would become "//host".
 * @param {string} target
 * @returns {string}
 */
export function sameSitePath(target) {
  if (!/^\/(?![/\\])/.test(target) || /[\u0000-\u001f\u007f\\]/.test(target)) return "";
  try {
    return new URL(target, location.origin).origin === location.origin ? target : "";
  } catch {
    return "";
  }
}

/** Where the person came from (the `next` parameter, same-site paths only), or "" when none. */
function cameFrom() {
  return sameSitePath(new URLSearchParams(location.search).get("next") || "");
}

/**
 * "12 秒" or "5 分钟": how long a throttled attempt must wait (the API's Retry-After).
 * @param {unknown} err
 */
function waitText(err) {
  const details = /** @type {any} */ (err).details || {};
  const seconds = Math.max(1, Math.ceil(Number(details.retry_after_s) || 1));
  return seconds < 120 ? `${seconds} 秒` : `${Math.ceil(seconds / 60)} 分钟`;
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
  let step = mode === "register" ? "register" : "login";
  try {
    if (mode === "register") {
      // The same answer whether the phone was new (the account now exists) or not (nothing changed):
      // logging in with this password tells the person which.
      await api("POST", "/api/auth/register", { name: field(data, "name"), phone, password });
      step = "login";
    }
    const res = await api("POST", "/api/auth/login", { phone, password });
    rememberCsrf(res.csrf_token || "");
    say(mode === "register" ? "已登录，正在进入…" : "登录成功，正在跳转…", "ok");
    location.href = await landing();
  } catch (err) {
    const status = err instanceof ApiError ? err.status : 0;
    if (status === 429) {
      const what = step === "register" ? "此网络注册次数过多" : "尝试次数过多";
      say(`${what}，请 ${waitText(err)}后再试。`, "error");
    } else if (mode === "register" && step === "login" && status === 401) {
      // Registered just now with this password, yet it does not open the account: the phone had one.
      say("该手机号已注册，请用原来的密码登录。", "error");
      $("#message").append(" ", h("a", { href: `/login?next=${encodeURIComponent(cameFrom() || "/me")}` }, ["去登录"]));
    } else {
      sayError(err);
    }
    done();
  }
});
