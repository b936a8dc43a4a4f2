// @ts-check
/** Log-in and registration pages. */
import { api, rememberCsrf } from "../api.js";
import { $, say, sayError, whoami } from "../ui.js";

/** @param {FormData} data @param {string} name */
function field(data, name) {
  return String(data.get(name) || "").trim();
}

/** After login, go where the person came from (only same-site paths), else to "my learning". */
function next() {
  const target = new URLSearchParams(location.search).get("next") || "/me";
  return target.startsWith("/") && !target.startsWith("//") ? target : "/me";
}

async function login(/** @type {string} */ phone, /** @type {string} */ password) {
  const res = await api("POST", "/api/auth/login", { phone, password });
  rememberCsrf(res.csrf_token || "");
}

const form = /** @type {HTMLFormElement} */ ($("form"));
const mode = form.dataset.mode;
whoami().catch(() => undefined);

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const button = /** @type {HTMLButtonElement} */ ($("button[type=submit]"));
  button.disabled = true;
  say(mode === "register" ? "正在注册…" : "正在登录…");
  try {
    if (mode === "register") {
      if (field(data, "password") !== field(data, "password2")) {
        say("两次输入的密码不一致。", "error");
        return;
      }
      await api("POST", "/api/auth/register", {
        name: field(data, "name"),
        phone: field(data, "phone"),
        password: field(data, "password"),
      });
    }
    await login(field(data, "phone"), field(data, "password"));
    say("成功，正在跳转…", "ok");
    location.href = next();
  } catch (err) {
    sayError(err);
  } finally {
    button.disabled = false;
  }
});
