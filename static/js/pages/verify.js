// @ts-check
/**
 * 证书查验 (public, no login): the serial and verification code from the QR code's URL or typed by hand;
 * the answer in big, clear words — 有效 / 已撤销 / 已被新证书替代 / 未找到 — with what the certificate
 * certifies (the holder's name masked). GET /api/certificates/verify (docs/api.md, "Certificates").
 */
import { api, ApiError } from "../api.js";
import { $, busy, h, say, whoami } from "../ui.js";

/** @type {Record<string, [string, string]>} status -> [word, explanation] */
const VERDICT = {
  valid: ["有效", "该证书真实有效。请核对证书上的姓名、学时与下列信息一致。"],
  revoked: ["已撤销", "该证书已失效，不能作为学时证明使用。"],
  replaced: ["已被新证书替代", "持证人已获发更新的证书，本证书不再使用。请向持证人索取最新的证书。"],
  not_found: ["未找到", "未找到该证书，请核对编号和验证码。"],
};
/** @type {Record<string, string>} why a certificate shows revoked (never the reason's own text) */
const REASON = {
  certificate_revoked: "该证书已被发证单位或主管部门撤销。",
  credit_revoked: "证书所含的学时已被撤销。",
  credit_reversed: "证书所含的学时已被更正冲销。",
  credit_not_registered: "证书所含的学时已不再有效。",
};
/** @type {Record<string, string>} */
const SCOPE = { course: "课程学时证明", annual: "年度学时证明" };

/** @param {string} text */
function normalise(text) {
  return text.replace(/\s+/g, "").toUpperCase();
}

/** @param {string} value e.g. "12.50" */
function xueshi(value) {
  const n = Number(value);
  return Number.isFinite(n) ? `${n} 学时` : value;
}

/** @param {string} day "2026-12-06" */
function dateText(day) {
  const [y, m, d] = day.split("-");
  return `${y}年${m}月${d}日`;
}

/**
 * @param {string} status valid, revoked, replaced or not_found
 * @param {string | null} [reason]
 */
function showVerdict(status, reason) {
  const box = $("#verdict");
  const [word, text] = VERDICT[status];
  box.dataset.status = status;
  $("#verdict-word").textContent = word;
  const why = (status === "revoked" && reason && REASON[reason]) || text;
  // What a revoked or replaced certificate said is still shown, to compare with the paper, but not as proof.
  const asIs = status === "revoked" || status === "replaced" ? "下列为该证书原载信息，仅供核对。" : "";
  $("#verdict-text").textContent = why + asIs;
  box.hidden = false;
}

/** @param {any} cert the public answer */
function showFacts(cert) {
  /** @type {[string, string][]} */
  const rows = [
    ["姓名", cert.name],
    ["证书类型", SCOPE[cert.scope] || cert.scope],
    ...(/** @type {[string, string][]} */ (cert.scope === "course" ? [["课程", cert.course_title || ""]] : [])),
    ["年度", `${cert.year} 年度`],
    ["公需科目", xueshi(cert.public_xueshi)],
    ["专业科目", xueshi(cert.professional_xueshi)],
    ["合计", xueshi(cert.total_xueshi)],
    ["发证单位", cert.issuer],
    ["发证日期", dateText(cert.issued_on)],
    ["证书编号", cert.serial],
  ];
  const dl = $("#facts");
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, [k]), h("dd", { "data-field": k }, [v])]));
  dl.hidden = false;
}

/**
 * @param {string} serial
 * @param {string} code
 */
async function check(serial, code) {
  $("#facts").hidden = true;
  $("#verdict").hidden = true;
  say("");
  try {
    const cert = await api("GET", `/api/certificates/verify?${new URLSearchParams({ serial, code })}`);
    showVerdict(cert.status, cert.reason);
    showFacts(cert);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      showVerdict("not_found");
    } else if (err instanceof ApiError && err.status === 429) {
      const s = Math.max(1, Number(err.details?.retry_after_s) || 60);
      say(`查验次数过多，请 ${s < 120 ? `${s} 秒` : `${Math.ceil(s / 60)} 分钟`}后再试。`, "error");
    } else if (err instanceof ApiError && err.status === 400) {
      say("请输入证书编号和验证码。", "error");
    } else {
      say(err instanceof ApiError ? "服务暂不可用，请稍后重试。" : "网络错误，请检查网络后重试。", "error");
    }
  }
}

async function main() {
  whoami().catch(() => null); // the header only: this page needs no login
  const form = /** @type {HTMLFormElement} */ ($("#verify-form"));
  const serialInput = /** @type {HTMLInputElement} */ (form.elements.namedItem("serial"));
  const codeInput = /** @type {HTMLInputElement} */ (form.elements.namedItem("code"));
  const params = new URLSearchParams(location.search);
  serialInput.value = normalise(params.get("serial") || "");
  codeInput.value = normalise(params.get("code") || "");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const serial = normalise(serialInput.value);
    const code = normalise(codeInput.value);
    if (!serial || !code) {
      say("请输入证书编号和验证码。", "error");
      return;
    }
    // The address bar holds what was checked, so it can be shared or reloaded.
    history.replaceState(null, "", `/verify?${new URLSearchParams({ serial, code })}`);
    const done = busy(/** @type {HTMLButtonElement} */ (form.querySelector("button")), "正在查验…");
    try {
      await check(serial, code);
    } finally {
      done();
    }
  });
  if (serialInput.value && codeInput.value) await check(serialInput.value, codeInput.value);
}

main();
