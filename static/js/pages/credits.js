// @ts-check
/**
 * 我的学时: this year's 学时 by 公需/专业 against the requirement (only registered credit counts; pending
 * is shown as 待审核), each course's entries with their evidence and status (the employer's decision and
 * its reason), sessions attended without credit yet, and certificates of registered 学时 (PDF and the
 * public verification link; GET/POST /api/me/certificates).
 */
import { api, ApiError } from "../api.js";
import { $, busy, CATEGORY, duration, h, requireLogin, say, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const STATUS = { pending: "待审核", registered: "已认定", rejected: "已驳回", revoked: "已撤销" };
/** @type {Record<string, string>} */
const KIND = { live: "直播", hls: "直播（分流）", replay: "回放", external: "腾讯会议/钉钉", offline: "线下培训", mentorship: "师承带徒", reversal: "更正" };
/** @type {Record<string, string>} */
const CERT_STATUS = { valid: "有效", revoked: "已撤销", replaced: "已被新证书替代" };

/**
 * An entry's status as the learner reads it: who recognised it, or why not (the latest decision's reason).
 * @param {any} e an entry of GET /api/me/credits
 * @returns {string}
 */
function statusText(e) {
  if (e.kind === "reversal") return "更正冲销";
  const reason = e.decision?.reason ? `：${e.decision.reason}` : "";
  switch (e.status) {
    case "pending": return "待审核";
    case "registered": return ["bureau", "admin"].includes(e.decision?.decided_as) ? "已认定（人社部门已审核）" : "已认定（单位已审核）";
    case "rejected": return `已驳回${reason}`;
    case "revoked": return `已撤销${reason}`;
    default: return STATUS[e.status] || e.status;
  }
}

/**
 * One progress bar: registered credit against the requirement, pending beside it.
 * @param {string} label
 * @param {string} registered
 * @param {string} pending
 * @param {string} required
 * @param {string} key
 */
function bar(label, registered, pending, required, key) {
  const need = Number(required) || 0;
  const got = Number(registered) || 0;
  const share = need > 0 ? Math.min(100, Math.round((got / need) * 100)) : 100;
  const waiting = Number(pending) || 0;
  return h("div", { class: "credit-total", "data-total": key }, [
    h("h3", {}, [label]),
    h("div", { class: "meta" }, [
      h("span", { class: "registered" }, [`已认定 ${got} / ${need} 学时`]),
      h("span", { class: "pending" }, [`待审核 ${waiting} 学时`]),
      h("span", {}, [got >= need ? "已达到要求" : `还差 ${Math.max(0, need - got)} 学时`]),
    ]),
    h("div", { class: "progress", role: "progressbar", "aria-label": `${label}进度`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(share) }, [
      h("span", { style: `width: ${share}%` }, []),
    ]),
  ]);
}

/** @param {any} e an entry of GET /api/me/credits */
function entryLine(e) {
  const facts = [h("span", {}, [e.session_title || (e.kind === "mentorship" ? "带徒协议结业" : "课程回放")]), h("span", {}, [KIND[e.kind] || e.kind])];
  if (e.present_s != null) facts.push(h("span", {}, [`${e.kind === "offline" ? "在场" : "在线"} ${duration(e.present_s)}`]));
  if (e.coverage != null) facts.push(h("span", {}, [`回放覆盖 ${Math.round(e.coverage * 100)}%`]));
  if (e.checks_total) facts.push(h("span", {}, [`签到 ${e.checks_answered}/${e.checks_total}`]));
  facts.push(h("strong", {}, [`${Number(e.xueshi)} 学时`]));
  facts.push(h("span", { class: `badge status-${e.kind === "reversal" ? "reversal" : e.status}`, "data-status": e.status }, [statusText(e)]));
  if (e.reversed) facts.push(h("span", {}, ["（已被更正冲销）"]));
  if (e.decided_at && e.kind !== "reversal") facts.push(h("span", {}, [`审核于 ${when(e.decided_at)}`]));
  facts.push(h("span", {}, [`规则 v${e.policy_version}`]));
  // Credit earned from shared courseware whose approval the association later revoked: kept, marked.
  if (e.courseware_revoked) facts.push(h("span", { class: "badge courseware-revoked" }, ["课件审核已撤销（学时保留）"]));
  return h("div", { class: "meta entry", "data-entry": String(e.id) }, facts);
}

/**
 * @param {any} c
 * @param {(body: Record<string, unknown>, button: HTMLButtonElement) => void} issue
 * @param {number} year
 */
function courseItem(c, issue, year) {
  // Credit of no course (a mentorship's award) has no course page, no course total and no course certificate.
  const noCourse = c.course_id === null;
  const parts = [
    h("h3", {}, [noCourse ? h("a", { href: "/mentorships" }, [c.title]) : h("a", { href: `/courses/${c.course_id}` }, [c.title])]),
    h("div", { class: "meta" }, [
      h("span", { class: "tag" }, [CATEGORY[c.category] || c.category]),
      h("span", {}, [`待审核 ${Number(c.pending_xueshi)} 学时`]),
      h("span", {}, [`已认定 ${Number(c.registered_xueshi)} 学时`]),
      ...(noCourse ? [] : [h("span", {}, [`课程共 ${Number(c.credit_hours)} 学时`])]),
    ]),
    ...c.entries.map(entryLine),
  ];
  if (!noCourse && Number(c.registered_xueshi) > 0) {
    const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "button", "data-certificate": String(c.course_id) }, ["生成课程学时证明"]));
    button.addEventListener("click", () => issue({ scope: "course", year, course_id: c.course_id }, button));
    parts.push(h("div", { class: "actions" }, [button]));
  }
  return h("li", { "data-course": noCourse ? "none" : String(c.course_id) }, parts);
}

/** @param {any} c a certificate of GET /api/me/certificates */
function certificateItem(c) {
  const what = c.scope === "annual" ? `${c.year} 年度学时证明` : `${c.course_title}（${c.year} 年）`;
  const links = [
    h("a", { class: "button", href: c.pdf_url, download: "", "data-pdf": c.serial }, ["下载证书（PDF）"]),
    h("a", { class: "button", href: c.verify_url, target: "_blank", rel: "noopener", "data-verify": c.serial }, ["查验链接"]),
  ];
  return h("li", { "data-serial": c.serial, "data-status": c.status }, [
    h("h3", {}, [what, " ", h("span", { class: `badge cert-${c.status}` }, [CERT_STATUS[c.status] || c.status])]),
    h("div", { class: "meta" }, [
      h("span", {}, [`编号 ${c.serial}`]),
      h("span", {}, [`验证码 ${c.verify_code}`]),
      h("strong", {}, [`${Number(c.total_xueshi)} 学时`]),
      h("span", {}, [`公需 ${Number(c.public_xueshi)}，专业 ${Number(c.professional_xueshi)}`]),
      h("span", {}, [`${c.issuer} · ${when(c.issued_at)}`]),
    ]),
    h("div", { class: "actions" }, links),
  ]);
}

/** @param {any} u */
function waitingItem(u) {
  return h("li", { "data-session": String(u.session_id) }, [
    h("h3", {}, [u.session_title]),
    h("div", { class: "meta" }, [
      h("a", { href: `/courses/${u.course_id}` }, [u.course_title]),
      ...(u.scheduled_start ? [h("span", {}, [when(u.scheduled_start)])] : []),
      h("span", { class: "reason" }, [u.reason_text]),
    ]),
  ]);
}

/**
 * The certificates of the year (newest first), with a button for the year's transcript.
 * @param {number} year
 * @param {boolean} anyRegistered
 * @param {(body: Record<string, unknown>, button: HTMLButtonElement) => void} issue
 */
async function showCertificates(year, anyRegistered, issue) {
  const data = await api("GET", "/api/me/certificates");
  const mine = data.items.filter((/** @type {any} */ c) => c.year === year);
  $("#certificates").replaceChildren(...(mine.length ? mine.map(certificateItem) : [h("li", { class: "empty" }, [anyRegistered ? "还没有生成证书。" : "本年度还没有已认定的学时，认定后可生成证书。"])]));
  const annual = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "button", id: "annual-certificate" }, [`生成 ${year} 年度学时证明`]));
  annual.addEventListener("click", () => issue({ scope: "annual", year }, annual));
  $("#issue").replaceChildren(...(anyRegistered ? [annual] : []));
}

/**
 * Ask for a certificate; the list shows it (the server answers the current one when nothing changed).
 * @param {number} year
 * @param {boolean} anyRegistered
 * @returns {(body: Record<string, unknown>, button: HTMLButtonElement) => void}
 */
function issuer(year, anyRegistered) {
  const issue = (/** @type {Record<string, unknown>} */ body, /** @type {HTMLButtonElement} */ button) => {
    const done = busy(button, "正在生成…");
    api("POST", "/api/me/certificates", body)
      .then(async (cert) => {
        await showCertificates(year, anyRegistered, issue);
        say(`证书已生成：编号 ${cert.serial}。可下载 PDF，或把查验链接发给需要核验的单位。`, "ok");
        document.querySelector(`#certificates li[data-serial="${cert.serial}"]`)?.scrollIntoView({ block: "nearest" });
      })
      .catch((err) => {
        if (err instanceof ApiError && err.status === 409) say("没有已认定的学时可以生成证书。", "error");
        else if (err instanceof ApiError && err.status === 503) say("证书服务暂不可用，请稍后再试。", "error");
        else sayError(err);
      })
      .finally(done);
  };
  return issue;
}

/** @param {number} year */
async function show(year) {
  const data = await api("GET", `/api/me/credits?year=${year}`);
  const anyRegistered = Number(data.summary.total_registered) > 0;
  const issue = issuer(year, anyRegistered);
  const s = data.summary;
  $("#totals").replaceChildren(
    bar("公需科目", s.registered.public, s.pending.public, s.required_public, "public"),
    bar("专业科目", s.registered.professional, s.pending.professional, s.required_professional, "professional"),
    bar("年度总计", s.total_registered, s.total_pending, s.required_total, "total"),
  );
  $("#courses").replaceChildren(...(data.courses.length ? data.courses.map((/** @type {any} */ c) => courseItem(c, issue, year)) : [h("li", { class: "empty" }, ["本年度还没有学时记录。"])]));
  $("#waiting").replaceChildren(...(data.uncredited.length ? data.uncredited.map(waitingItem) : [h("li", { class: "empty" }, ["没有。"])]));
  $("#policy-version").textContent = `v${data.policy_version}`;
  await showCertificates(year, anyRegistered, issue);
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const policy = await api("GET", "/api/credit-policy").catch(() => null);
  if (policy) $("#per-xueshi").textContent = String(policy.params.minutes_per_xueshi);
  // Credit years are Beijing years.
  const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: "Asia/Shanghai", year: "numeric" }).format(new Date()));
  const select = /** @type {HTMLSelectElement} */ ($("#year"));
  for (let y = thisYear; y >= thisYear - 4; y--) select.append(h("option", { value: String(y) }, [`${y} 年`]));
  select.addEventListener("change", () => show(Number(select.value)).catch((err) => sayError(err)));
  await show(thisYear);
}

init().catch((err) => sayError(err));
