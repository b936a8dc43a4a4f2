// @ts-check
/** The provider console's external meetings (腾讯会议 / 钉钉): an organization's platform credentials
 * (entered once, never shown again), and per external session its link, the pull, a file import with its
 * per-row report, and the manual matching queue. */
import { api, ApiError, csrfToken } from "./api.js";
import { busy, duration, errorText, h, PLATFORM, say, sayError, when } from "./ui.js";

/** Why a row was matched, left for review or skipped (catalog.external_imports reasons). */
const REASON = {
  linked_account: "已绑定的平台账号",
  link_verified_by_phone: "平台账号（手机号核实）",
  phone: "手机号一致",
  leave_time_added: "补全离会时间",
  dial_in: "电话入会，须人工确认",
  link_not_verified: "平台账号未经核实",
  link_and_phone_disagree: "平台账号与手机号不一致",
  account_not_linked: "平台账号未绑定学员",
  phone_matches_no_enrolled_learner: "手机号不属于本课程学员",
  name_only: "只有昵称，不能据此认定",
  blank: "空行",
  summary: "合计行",
  header: "表头行",
  note: "说明行",
  no_time: "没有入会时间",
  malformed: "格式错误",
  duplicate: "已导入过",
  manual: "人工确认",
};
/** @type {Record<string, string>} */
const ROW_STATUS = { matched: "已匹配", needs_review: "待人工确认", skipped: "跳过" };
/** @type {Record<string, string>} */
const BATCH_STATUS = { done: "完成", failed: "失败", running: "进行中", open: "接收中", unchanged: "无变化" };
/** @type {Record<string, string>} */
const SOURCE = { api: "接口拉取", file: "文件导入", webhook: "事件推送" };

/** @param {string} reason */
const reasonText = (reason) => /** @type {Record<string, string>} */ (REASON)[reason] || reason;

// -- credentials -----------------------------------------------------------------------------------------

/** @type {Record<"tencent" | "dingtalk", [string, string, boolean][]>} */
const FIELDS = {
  tencent: [
    ["app_id", "AppId", true],
    ["sdk_id", "SdkId（可选）", false],
    ["secret_id", "SecretId", true],
    ["secret_key", "SecretKey", true],
    ["userid", "操作人 userid", true],
    ["webhook_token", "事件订阅 Token（可选）", false],
    ["webhook_aes_key", "事件订阅 EncodingAESKey（可选）", false],
  ],
  dingtalk: [
    ["app_key", "AppKey", true],
    ["app_secret", "AppSecret", true],
    ["operator_union_id", "操作人 unionId（可选）", false],
  ],
};
/** @type {Record<string, string>} */
const VENDOR = { tencent: "腾讯会议", dingtalk: "钉钉" };

/** @param {any} status GET /api/organizations/{id}/integrations/{platform} */
function credentialState(status) {
  // The secret is never shown again: only that it is set, when, and the last 4 characters of its id.
  return status.set ? `已设置 ${status.hint.replace("…", "…后4位 ")}（${when(status.set_at)}）` : "未设置";
}

/**
 * One organization's credentials form for one platform.
 * @param {number} orgId @param {"tencent" | "dingtalk"} vendor
 */
function credentialForm(orgId, vendor) {
  const state = h("span", { class: "credential-state", "data-platform": vendor }, ["正在读取…"]);
  const inputs = FIELDS[vendor].map(([name, label, required]) =>
    h("label", {}, [String(label), h("input", { name: String(name), autocomplete: "off", spellcheck: "false", ...(required ? { required: "" } : {}) })]),
  );
  const message = h("p", { class: "message", role: "status", hidden: "" });
  const save = /** @type {HTMLButtonElement} */ (h("button", { class: "button primary", type: "submit" }, ["保存凭据"]));
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "stack", "data-credentials": vendor }, [...inputs, message, save]));
  const refresh = async () => {
    try {
      state.textContent = credentialState(await api("GET", `/api/organizations/${orgId}/integrations/${vendor}`));
    } catch (err) {
      state.textContent = errorText(err);
    }
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    /** @type {Record<string, string>} */
    const body = {};
    for (const [name, value] of new FormData(form)) if (String(value).trim()) body[name] = String(value).trim();
    const done = busy(save, "正在保存…");
    try {
      const status = await api("PUT", `/api/organizations/${orgId}/integrations/${vendor}`, body);
      form.reset(); // the secret leaves the page
      state.textContent = credentialState(status);
      say(status.replaced ? "凭据已更换。" : "凭据已保存。", "ok", message);
    } catch (err) {
      sayError(err, message);
    } finally {
      done();
    }
  });
  refresh();
  return h("details", { class: "credentials" }, [h("summary", {}, [`${VENDOR[vendor]}凭据：`, state]), form]);
}

/**
 * The credentials of the caller's organizations, both platforms.
 * @param {HTMLElement} box @param {{org_id: number, org_name?: string}[]} orgs
 */
export function fillCredentials(box, orgs) {
  box.replaceChildren(
    ...orgs.map((o) =>
      h("div", { class: "org-credentials", "data-org": String(o.org_id) }, [
        h("h3", {}, [o.org_name || `机构 ${o.org_id}`]),
        h("p", { class: "hint" }, ["凭据加密保存，保存后不再显示；重新填写即可更换。"]),
        credentialForm(o.org_id, "tencent"),
        credentialForm(o.org_id, "dingtalk"),
      ]),
    ),
  );
}

// -- one session -----------------------------------------------------------------------------------------

/** @param {string} platform @param {any} link */
function linkText(platform, link) {
  if (platform === "tencent") {
    const code = link.meeting_code ? `会议号 ${link.meeting_code}` : "";
    const id = link.meeting_id ? `会议 ID ${link.meeting_id}` : "";
    const sub = link.sub_meeting_id ? `子会议 ${link.sub_meeting_id}` : "";
    return [code, id, sub].filter(Boolean).join("，") || "未关联";
  }
  const ref = link.conference_id || link.live_id;
  return ref ? `${platform === "dingtalk_conf" ? "会议" : "直播"} ${ref}` : "未关联";
}

/** @param {any} report an import or pull report */
function reportView(report) {
  const c = report.counts || {};
  const head = report.already_imported
    ? "这份数据之前已经导入过，没有任何变化。"
    : `共 ${c.rows} 行：已匹配 ${c.matched}，待人工确认 ${c.needs_review}，跳过 ${c.skipped}。`;
  const rows = (report.rows || []).map((/** @type {any} */ r) =>
    h("tr", { "data-status": r.status }, [
      h("td", {}, [r.ref]),
      h("td", {}, [r.name || ""]),
      h("td", {}, [ROW_STATUS[r.status] || r.status]),
      h("td", {}, [`${reasonText(r.reason)}${r.detail ? `（${r.detail}）` : ""}`]),
    ]),
  );
  return h("div", { class: "import-report" }, [
    h("p", { class: "report-head" }, [head]),
    ...(rows.length
      ? [h("div", { class: "table-wrap" }, [h("table", {}, [h("thead", {}, [h("tr", {}, ["位置", "昵称", "结果", "原因"].map((t) => h("th", {}, [t])))]), h("tbody", {}, rows)])])]
      : []),
    ...(report.rows_truncated ? [h("p", { class: "hint" }, ["只列出前 1000 行问题。"])] : []),
  ]);
}

/**
 * @param {File} file @param {number} sessionId
 * @returns {Promise<any>} the import report
 */
async function uploadFile(file, sessionId) {
  const form = new FormData();
  form.append("file", file, file.name);
  const res = await fetch(`/api/sessions/${sessionId}/external/import`, {
    method: "POST",
    body: form,
    headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    credentials: "same-origin",
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || "error", err.message || res.statusText, err.field || null, err.details || null);
  }
  return data;
}

/**
 * The link form of an external session.
 * @param {any} s @param {any} link GET /api/sessions/{id}/external @param {() => void} reload
 */
function linkForm(s, link, reload) {
  const platform = s.external_platform;
  const fields =
    platform === "tencent"
      ? [
          h("label", {}, ["会议号（9 位）", h("input", { name: "meeting_code", inputmode: "numeric", maxlength: "11", value: link.meeting_code || "", placeholder: "如：445 999 969" })]),
          h("label", {}, ["或会议 ID", h("input", { name: "meeting_id", inputmode: "numeric", maxlength: "32", value: link.meeting_id || "" })]),
          h("label", {}, ["子会议 ID（周期性会议）", h("input", { name: "sub_meeting_id", inputmode: "numeric", maxlength: "32", value: link.sub_meeting_id || "" })]),
        ]
      : [h("label", {}, [platform === "dingtalk_conf" ? "会议 ID（conferenceId）" : "直播 ID（liveId）", h("input", { name: platform === "dingtalk_conf" ? "conference_id" : "live_id", maxlength: "64", value: link.conference_id || link.live_id || "", required: "" })])];
  const message = h("p", { class: "message", role: "status", hidden: "" });
  const save = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "submit" }, ["保存关联"]));
  const form = /** @type {HTMLFormElement} */ (h("form", { class: "stack link-form" }, [...fields, message, save]));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    /** @type {Record<string, string>} */
    const body = { platform };
    for (const [name, value] of new FormData(form)) {
      const v = String(value).replace(/\s+/g, "");
      if (v) body[name] = v;
    }
    const done = busy(save, "正在保存…");
    try {
      await api("PUT", `/api/sessions/${s.id}/external`, body);
      say("已关联会议。", "ok", message);
      reload();
    } catch (err) {
      sayError(err, message);
    } finally {
      done();
    }
  });
  return form;
}

/**
 * The manual matching queue: each waiting participant, a choice of enrolled learners, 确认 / 不计学时.
 * @param {any} queue GET /api/sessions/{id}/external/review @param {any[]} learners enrollments
 * @param {() => void} reload
 */
function reviewList(queue, learners, reload) {
  if (!queue.items.length) return h("p", { class: "hint review-empty" }, ["没有待人工确认的记录。"]);
  return h(
    "ul",
    { class: "list review-queue" },
    queue.items.map((/** @type {any} */ item) => {
      const select = /** @type {HTMLSelectElement} */ (
        h("select", { name: "person_id", "aria-label": `为“${item.display_name}”选择学员` }, [
          h("option", { value: "" }, ["选择报名学员…"]),
          ...learners.map((/** @type {any} */ e) => h("option", { value: String(e.person_id) }, [`${e.person_name}（${e.person_phone}）`])),
        ])
      );
      if (item.suggested_person) select.value = String(item.suggested_person.person_id);
      const message = h("p", { class: "message", role: "status", hidden: "" });
      const confirmBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "button primary", type: "button" }, ["确认匹配"]));
      const rejectBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["不计学时"]));
      /** @param {number | null} personId @param {HTMLButtonElement} button */
      const decide = async (personId, button) => {
        const done = busy(button, "正在保存…");
        try {
          await api("POST", `/api/external-records/${item.record_id}/match`, { person_id: personId });
          reload();
        } catch (err) {
          sayError(err, message);
          done();
        }
      };
      confirmBtn.addEventListener("click", () => {
        if (!select.value) {
          say("请先选择一位报名学员。", "error", message);
          return;
        }
        decide(Number(select.value), confirmBtn);
      });
      rejectBtn.addEventListener("click", () => decide(null, rejectBtn));
      const spans = item.rows.map((/** @type {any} */ r) => (r.join_at ? `${when(r.join_at)} – ${r.leave_at ? when(r.leave_at) : "未离会"}` : `观看 ${duration(r.watched_s || 0)}`));
      return h("li", { "data-record": String(item.record_id) }, [
        h("h4", {}, [item.display_name || "（无昵称）"]),
        h("div", { class: "meta" }, [h("span", { class: "tag" }, [reasonText(item.reason)]), h("span", {}, [`${item.rows.length} 条记录`]), ...spans.slice(0, 3).map((/** @type {string} */ t) => h("span", {}, [t]))]),
        h("div", { class: "actions" }, [select, confirmBtn, rejectBtn]),
        message,
      ]);
    }),
  );
}

/**
 * Everything about an external session, in a <details> that loads when opened.
 * @param {any} s a session of GET /api/courses/{id}
 * @param {number} courseId
 * @returns {HTMLElement[]}
 */
export function externalTools(s, courseId) {
  if (s.kind !== "external" || !s.external_platform || s.external_platform === "none") return [];
  const body = h("div", { class: "external-body" }, [h("p", { class: "hint" }, ["正在加载…"])]);
  const detail = /** @type {HTMLDetailsElement} */ (h("details", { class: "external", "data-external": String(s.id) }, [h("summary", {}, [`${PLATFORM[s.external_platform]}：关联与参会记录`]), body]));
  const message = h("p", { class: "message", role: "status", hidden: "" });
  /** @type {HTMLElement | null} */
  let lastReport = null;
  const load = async () => {
    try {
      const [link, queue, enrolled] = await Promise.all([
        api("GET", `/api/sessions/${s.id}/external`),
        api("GET", `/api/sessions/${s.id}/external/review`),
        api("GET", `/api/courses/${courseId}/enrollments?page_size=100`),
      ]);
      const linked = linkText(s.external_platform, link);
      const pullBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["拉取参会记录"]));
      const file = /** @type {HTMLInputElement} */ (h("input", { type: "file", name: "file", accept: ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "aria-label": "参会记录文件" }));
      const importBtn = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["导入文件"]));
      pullBtn.addEventListener("click", async () => {
        const done = busy(pullBtn, "正在拉取…");
        try {
          lastReport = reportView(await api("POST", `/api/sessions/${s.id}/external/pull`));
          await load();
          say("参会记录已拉取。", "ok", message);
        } catch (err) {
          sayError(err, message);
        } finally {
          done();
        }
      });
      importBtn.addEventListener("click", async () => {
        const chosen = file.files && file.files[0];
        if (!chosen) {
          say("请先选择从腾讯会议或钉钉导出的 CSV / Excel 文件。", "error", message);
          return;
        }
        const done = busy(importBtn, "正在导入…");
        try {
          lastReport = reportView(await uploadFile(chosen, s.id));
          await load();
          say(`“${chosen.name}”已导入。`, "ok", message);
        } catch (err) {
          sayError(err, message);
        } finally {
          done();
        }
      });
      const batches = link.batches.map((/** @type {any} */ b) => {
        const c = b.counts || {};
        const rows = c.rows != null ? `，${c.rows} 行（匹配 ${c.matched || 0}，待确认 ${c.needs_review || 0}，跳过 ${c.skipped || 0}）` : "";
        return h("li", { "data-batch": String(b.id) }, [`#${b.id} ${SOURCE[b.source] || b.source} ${when(b.fetched_at)} ${BATCH_STATUS[b.status] || b.status}${rows}${b.error ? `：${b.error}` : ""}`]);
      });
      body.replaceChildren(
        h("div", { class: "meta" }, [h("span", { class: "linked-meeting" }, [linked])]),
        h("details", { class: "link-edit" }, [h("summary", {}, ["修改关联"]), linkForm(s, link, load)]),
        h("div", { class: "actions" }, [pullBtn]),
        h("div", { class: "actions import" }, [file, importBtn]),
        message,
        ...(lastReport ? [lastReport] : []),
        h("h4", {}, [`待人工确认（${queue.participants} 人）`]),
        reviewList(queue, enrolled.items, load),
        ...(batches.length ? [h("h4", {}, ["导入记录"]), h("ul", { class: "batches" }, batches)] : []),
      );
    } catch (err) {
      body.replaceChildren(h("p", { class: "message error" }, [errorText(err)]));
    }
  };
  detail.addEventListener("toggle", () => {
    if (detail.open) load();
  });
  return [detail];
}
