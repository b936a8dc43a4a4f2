// @ts-check
/** Provider console: create courses and sessions, assign experts, publish, see enrollments; per session its
 * state, replay and attendance (who attended live and for how long, who watched the replay); external
 * meetings (platform credentials, links, pulls, file imports, the matching queue: external-console.js). */
import { creditDetails } from "../credit-table.js";
import { externalTools, fillCredentials } from "../external-console.js";
import { api, ApiError } from "../api.js";
import {
  $, beijingInstant, busy, CATEGORY, DELIVERY, duration, errorText, h, KIND, requireLogin, say, sayError, SOURCE, STATUS, statusTag, when,
} from "../ui.js";

const courseForm = /** @type {HTMLFormElement} */ ($("#new-course"));
const sessionForm = /** @type {HTMLFormElement} */ ($("#new-session"));
const publishBtn = /** @type {HTMLButtonElement} */ ($("#publish"));
const panelMessage = $("#panel-message");
// The session form's own message, beside its button: on a phone the panel's is a screen away.
const sessionMessage = $("#session-message");

/**
 * Mark the form field an API error names (aria-invalid, focused), clearing earlier marks.
 * @param {HTMLFormElement} form @param {unknown} err
 */
function markField(form, err) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const name = err instanceof ApiError && err.field === "expert_ids" ? "expert_q" : err instanceof ApiError ? err.field : null;
  const field = name ? form.elements.namedItem(name) : null;
  if (field instanceof HTMLElement) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}
/** @type {any} the course open in the panel (GET /api/courses/{id}) */
let current = null;
/** @type {number[]} organizations the caller administers */
let orgIds = [];
/** Experts offered in the pickers, by person id: those of this provider's sessions and those found. */
const knownExperts = new Map(/** @type {[number, string][]} */ ([]));

/** @param {FormData} data @param {string} name */
const text = (data, name) => String(data.get(name) || "").trim();

/** @param {any} course */
function learnExperts(course) {
  for (const s of course.sessions || []) for (const e of s.experts || []) knownExperts.set(e.id, e.name);
}

/**
 * One checkbox of an expert picker.
 * @param {number} id @param {string} label @param {boolean} checked
 */
function expertBox(id, label, checked) {
  const input = h("input", { type: "checkbox", name: "expert", value: String(id) });
  /** @type {HTMLInputElement} */ (input).checked = checked;
  return h("label", { class: "check" }, [input, label]);
}

/**
 * Checkboxes of the known experts, and a search of the expert directory (GET /api/experts) whose
 * results join them.
 * @param {HTMLElement} box a fieldset to fill
 * @param {number[]} selected
 */
function fillExpertPicker(box, selected) {
  const legend = box.querySelector("legend");
  const list = h("div", { class: "expert-list" }, [...knownExperts].map(([id, name]) => expertBox(id, `${name}（编号 ${id}）`, selected.includes(id))));
  for (const id of selected.filter((id) => !knownExperts.has(id))) list.append(expertBox(id, `编号 ${id}`, true));
  const query = h("input", { type: "search", name: "expert_q", placeholder: "输入专家姓名，如：周红", maxlength: "100" });
  const found = h("p", { class: "hint", role: "status" }, []);
  const searchBtn = h("button", { type: "button" }, ["查找专家"]);
  const search = async () => {
    const q = /** @type {HTMLInputElement} */ (query).value.trim();
    try {
      const res = await api("GET", `/api/experts?q=${encodeURIComponent(q)}&page_size=20`);
      const shown = new Set([...list.querySelectorAll("input[name=expert]")].map((el) => Number(/** @type {HTMLInputElement} */ (el).value)));
      for (const e of res.items) {
        if (shown.has(e.id)) continue;
        const orgs = e.organizations.map((/** @type {any} */ o) => o.name).join("、");
        knownExperts.set(e.id, e.name);
        list.append(expertBox(e.id, `${e.name}（${orgs ? `${orgs}，` : ""}编号 ${e.id}）`, false));
      }
      found.textContent = res.total ? `找到 ${res.total} 位专家${res.total > res.items.length ? `，显示前 ${res.items.length} 位，请输入更完整的姓名` : ""}。` : "没有找到这位专家。";
    } catch (err) {
      found.textContent = errorText(err);
    }
  };
  searchBtn.addEventListener("click", search);
  query.addEventListener("keydown", (ev) => {
    if (/** @type {KeyboardEvent} */ (ev).key === "Enter") {
      ev.preventDefault();
      search();
    }
  });
  box.replaceChildren(...(legend ? [legend] : []), list, h("div", { class: "expert-search" }, [query, searchBtn]), found);
}

/**
 * The person ids chosen in an expert picker.
 * @param {HTMLElement} box
 * @returns {number[]}
 */
function pickedExperts(box) {
  const ids = [...box.querySelectorAll("input[name=expert]:checked")].map((el) => Number(/** @type {HTMLInputElement} */ (el).value));
  return [...new Set(ids)];
}

/** @param {number} id */
async function courseOrNull(id) {
  try {
    return await api("GET", `/api/courses/${id}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

async function loadCourses() {
  /** @type {Map<number, any>} */
  const all = new Map();
  for (const org of orgIds) {
    for (let page = 1; page <= 10; page++) {
      const res = await api("GET", `/api/courses?provider_id=${org}&status=all&page_size=100&page=${page}`);
      for (const c of res.items) all.set(c.id, c);
      if (page * 100 >= res.total) break;
    }
  }
  const courses = [...all.values()].sort((a, b) => (b.created_at > a.created_at ? 1 : -1));
  // Experts of the newest courses' sessions become the picker's choices.
  const details = await Promise.all(courses.filter((c) => c.status !== "draft").slice(0, 20).map((c) => courseOrNull(c.id)));
  for (const c of details) if (c) learnExperts(c);
  $("#my-courses").replaceChildren(
    ...(courses.length
      ? courses.map((c) => {
          const open = h("a", { href: `#course-${c.id}`, "data-course": String(c.id) }, [c.title]);
          open.addEventListener("click", (ev) => {
            ev.preventDefault();
            openCourse(c.id);
          });
          return h("li", {}, [
            h("h3", {}, [open]),
            h("div", { class: "meta" }, [
              h("span", { class: "tag" }, [STATUS[c.status] || c.status]),
              h("span", {}, [CATEGORY[c.category] || c.category]),
              h("span", {}, [DELIVERY[c.delivery] || c.delivery]),
              h("span", {}, [`${c.credit_hours} 学时`]),
            ]),
          ]);
        })
      : [h("li", {}, ["还没有课程，先在上方新建一门吧。"])]),
  );
}

/**
 * A learner's attendance of one session, live and replay, as rows of a table.
 * @param {any} report GET /api/sessions/{id}/attendance
 */
function attendanceRows(report) {
  /** @type {Map<number, {name: string, phone: string, live: string, replay: string}>} */
  const people = new Map();
  const row = (/** @type {any} */ p) => people.get(p.person_id) || { name: p.name, phone: p.phone, live: "—", replay: "—" };
  for (const p of report.live) {
    people.set(p.person_id, { ...row(p), live: `${duration(p.present_s)}${p.watching_now ? "（正在观看）" : ""}` });
  }
  for (const p of report.replay) people.set(p.person_id, { ...row(p), replay: duration(p.position_s) });
  if (!people.size) return [h("tr", {}, [h("td", { colspan: "4" }, ["还没有学员观看"])])];
  return [...people.values()].map((p) => h("tr", {}, [h("td", {}, [p.name]), h("td", {}, [p.phone]), h("td", {}, [p.live]), h("td", {}, [p.replay])]));
}

/**
 * What learners did with a session: live attendance and replay viewers (live lectures only: the live
 * server does not see offline or external sessions).
 * @param {any} s
 * @param {any} counts this session's entry of GET /api/courses/{id}/attendance, or undefined
 * @returns {HTMLElement[]}
 */
function attendanceOf(s, counts) {
  if (s.kind !== "live") return [];
  const facts = [];
  if (s.replay) {
    facts.push(h("a", { href: `/replays/${encodeURIComponent(s.replay.id)}`, class: "replay-link" }, [`回放 ${duration(s.replay.duration_s)}`]));
  } else if (s.status === "ended") {
    facts.push(h("span", {}, ["暂无回放"]));
  }
  // Before a session starts there is nothing to count: no "0 人" lines for every planned session.
  const started = s.status === "live" || s.status === "ended" || (counts && counts.live_learners + counts.replay_learners > 0);
  if (counts && started) {
    const now = counts.watching_now ? `（正在观看 ${counts.watching_now} 人）` : "";
    facts.push(h("span", { class: "live-count" }, [`直播出席 ${counts.live_learners} 人${now}`]));
    facts.push(h("span", { class: "replay-count" }, [`回放观看 ${counts.replay_learners} 人`]));
  }
  if (!facts.length) return [];
  const body = h("tbody", {}, []);
  const detail = h("details", { class: "attendance" }, [
    h("summary", {}, ["出席明细"]),
    h("div", { class: "table-wrap" }, [
      h("table", {}, [h("thead", {}, [h("tr", {}, [h("th", {}, ["姓名"]), h("th", {}, ["手机号"]), h("th", {}, ["直播在场"]), h("th", {}, ["回放看到"])])]), body]),
    ]),
  ]);
  detail.addEventListener("toggle", async () => {
    if (!(/** @type {HTMLDetailsElement} */ (detail).open)) return;
    body.replaceChildren(h("tr", {}, [h("td", { colspan: "4" }, ["正在加载…"])]));
    try {
      body.replaceChildren(...attendanceRows(await api("GET", `/api/sessions/${s.id}/attendance`)));
    } catch (err) {
      body.replaceChildren(h("tr", {}, [h("td", { colspan: "4" }, [errorText(err)])]));
    }
  });
  return [h("div", { class: "meta session-facts" }, facts), ...(counts && started ? [detail, creditDetails(s.id)] : [])];
}

/**
 * @param {any} s a session with its experts
 * @param {any} [counts] its attendance counts
 */
function sessionItem(s, counts) {
  const names = (s.experts || []).map((/** @type {any} */ e) => e.name).join("、");
  const picker = h("fieldset", { class: "experts" }, [h("legend", {}, ["授课专家"])]);
  const save = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["保存专家"]));
  const message = h("p", { class: "message", hidden: "" });
  const edit = h("details", {}, [h("summary", {}, ["设置专家"]), picker, save, message]);
  edit.addEventListener("toggle", () => {
    if (/** @type {HTMLDetailsElement} */ (edit).open) fillExpertPicker(picker, (s.experts || []).map((/** @type {any} */ e) => e.id));
  });
  save.addEventListener("click", async () => {
    const ids = pickedExperts(picker);
    const done = busy(save, "正在保存…");
    try {
      await api("PUT", `/api/sessions/${s.id}/experts`, { person_ids: ids });
      await openCourse(current.id, "专家已更新。");
    } catch (err) {
      sayError(err, message);
      done();
    }
  });
  // A live session needs someone who can go live: say so where the provider looks.
  const expertLine = names
    ? h("span", { class: "experts-names" }, [`专家：${names}`])
    : h("span", { class: `experts-names${s.kind === "live" ? " warn" : ""}` }, [s.kind === "live" ? "专家：未指定（发布课程前须指定）" : "专家：未指定"]);
  return h("li", { "data-session": String(s.id) }, [
    h("h3", {}, [s.title]),
    h("div", { class: "meta" }, [
      ...(s.status ? [statusTag(s)] : []),
      h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
      h("span", {}, [KIND[s.kind] || s.kind]),
      ...(s.location ? [h("span", {}, [`地点：${s.location}`])] : []),
      expertLine,
    ]),
    ...(s.kind === "offline"
      ? [h("div", { class: "actions" }, [
          h("a", { class: "button", href: `/venue/${s.id}` }, ["现场签到屏"]),
          h("a", { class: "button", href: `/venue/${s.id}/records` }, ["签到记录"]),
        ])]
      : []),
    ...attendanceOf(s, counts),
    ...externalTools(s, current.id),
    ...(s.kind === "external" ? [creditDetails(s.id)] : []),
    edit,
  ]);
}

/**
 * Attendance counts per session id; empty when they cannot be read (the list still shows).
 * @param {number} courseId
 * @returns {Promise<Map<number, any>>}
 */
async function attendanceCounts(courseId) {
  try {
    const res = await api("GET", `/api/courses/${courseId}/attendance`);
    return new Map(res.sessions.map((/** @type {any} */ c) => [c.session_id, c]));
  } catch (err) {
    console.warn("attendance counts", err);
    return new Map();
  }
}

/**
 * Show one course in the panel: its sessions, the publish button, who enrolled.
 * @param {number} id
 * @param {string} [notice] a success line to show in the panel once loaded
 */
async function openCourse(id, notice = "") {
  const panel = $("#course-panel");
  panel.setAttribute("aria-busy", "true");
  say("正在加载课程…", "info", panelMessage);
  panel.hidden = false;
  try {
    current = await api("GET", `/api/courses/${id}`);
    learnExperts(current);
    $("#panel-title").textContent = current.title;
    $("#panel-meta").replaceChildren(
      h("span", { class: "tag", id: "panel-status" }, [STATUS[current.status] || current.status]),
      h("span", {}, [CATEGORY[current.category] || current.category]),
      h("span", {}, [DELIVERY[current.delivery] || current.delivery]),
      h("span", {}, [`${current.credit_hours} 学时`]),
    );
    $("#panel-link").setAttribute("href", `/courses/${current.id}`);
    publishBtn.hidden = current.status !== "draft";
    const sessions = current.sessions || [];
    const hint = $("#publish-hint");
    hint.hidden = !(current.status === "draft" && current.delivery === "recorded" && !(current.replays || []).length);
    hint.textContent = "录播课程要有可观看的回放才能发布：请先为课次录制直播，回放生成后再发布。";
    const counts = await attendanceCounts(current.id);
    $("#panel-sessions").replaceChildren(...(sessions.length ? sessions.map((/** @type {any} */ s) => sessionItem(s, counts.get(s.id))) : [h("li", {}, ["还没有课次"])]));
    fillExpertPicker($("#new-session-experts"), []);
    const res = await api("GET", `/api/courses/${id}/enrollments?page_size=100`);
    $("#enrollment-count").textContent = `共 ${res.total} 人`;
    $("#enrollments").replaceChildren(
      ...(res.items.length
        ? res.items.map((/** @type {any} */ e) =>
            h("tr", {}, [
              h("td", {}, [e.person_name || ""]),
              h("td", {}, [e.person_phone || ""]),
              h("td", {}, [when(e.enrolled_at)]),
              h("td", {}, [SOURCE[e.source] || e.source]),
            ]),
          )
        : [h("tr", {}, [h("td", { colspan: "4" }, ["暂无报名"])])]),
    );
    say(notice, "ok", panelMessage);
  } catch (err) {
    sayError(err, panelMessage);
  } finally {
    panel.removeAttribute("aria-busy");
  }
}

courseForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(courseForm);
  /** @type {Record<string, unknown>} */
  const body = {
    provider_id: Number(text(data, "provider_id")),
    title: text(data, "title"),
    description: text(data, "description"),
    category: text(data, "category"),
    delivery: text(data, "delivery"),
    credit_hours: Number(text(data, "credit_hours")),
  };
  if (!body.title) {
    say("请填写课程名称。", "error");
    return;
  }
  if (text(data, "industry")) body.industry = text(data, "industry");
  if (text(data, "capacity")) body.capacity = Number(text(data, "capacity"));
  const done = busy(/** @type {HTMLButtonElement} */ (courseForm.querySelector("button[type=submit]")), "正在创建…");
  try {
    const course = await api("POST", "/api/courses", body);
    say(`课程“${course.title}”已创建（草稿），请添加课次后发布。`, "ok");
    courseForm.reset();
    await loadCourses();
    await openCourse(course.id);
    $("#course-panel").scrollIntoView();
  } catch (err) {
    sayError(err);
  } finally {
    done();
  }
});

const kindSelect = /** @type {HTMLSelectElement} */ (sessionForm.elements.namedItem("kind"));
kindSelect.addEventListener("change", () => {
  $("#platform-row").hidden = kindSelect.value !== "external";
  $("#location-row").hidden = kindSelect.value !== "offline";
});

sessionForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!current) return;
  const data = new FormData(sessionForm);
  const start = text(data, "scheduled_start");
  const end = text(data, "scheduled_end");
  const experts = pickedExperts($("#new-session-experts"));
  const problem = !text(data, "title")
    ? "请填写课次名称。"
    : !start || !end
      ? "请填写开始和结束时间。"
      : end <= start
        ? "结束时间必须晚于开始时间。"
        : "";
  if (problem) {
    say(problem, "error", sessionMessage);
    return;
  }
  say("", "info", sessionMessage);
  const kind = text(data, "kind");
  /** @type {Record<string, unknown>} */
  const body = { title: text(data, "title"), kind, scheduled_start: beijingInstant(start), scheduled_end: beijingInstant(end) };
  if (kind === "external") body.external_platform = text(data, "external_platform");
  if (kind === "offline") body.location = text(data, "location");
  // The session and its experts in one request: the API checks both (dates ahead, an expert for a live
  // session of a published course) and creates nothing when either is wrong.
  if (experts.length) body.expert_ids = experts;
  const done = busy(/** @type {HTMLButtonElement} */ (sessionForm.querySelector("button[type=submit]")), "正在保存…");
  try {
    const session = await api("POST", `/api/courses/${current.id}/sessions`, body);
    markField(sessionForm, null);
    sessionForm.reset();
    $("#platform-row").hidden = true;
    $("#location-row").hidden = true;
    const later = kind === "live" && !experts.length ? "请在发布课程前为它指定授课专家。" : "";
    await openCourse(current.id, `课次“${session.title}”已创建。${later}`);
  } catch (err) {
    sayError(err, sessionMessage);
    markField(sessionForm, err);
  } finally {
    done();
  }
});

publishBtn.addEventListener("click", async () => {
  if (!current) return;
  if (!(current.sessions || []).length && !confirm("该课程还没有课次，确定发布吗？")) return;
  const done = busy(publishBtn, "正在发布…");
  try {
    await api("POST", `/api/courses/${current.id}/publish`, {});
    await loadCourses();
    await openCourse(current.id, "课程已发布，学员现在可以在课程目录中找到并报名。");
  } catch (err) {
    sayError(err, panelMessage);
  } finally {
    done();
  }
});

async function init() {
  const me = await requireLogin();
  if (!me) return;
  const roles = (me.roles || []).filter((/** @type {any} */ r) => r.role === "provider_admin");
  if (!roles.length) {
    say("您不是培训机构管理员，无法使用机构后台。", "error");
    for (const el of document.querySelectorAll("main section")) /** @type {HTMLElement} */ (el).hidden = true;
    return;
  }
  orgIds = roles.map((/** @type {any} */ r) => r.org_id);
  const select = /** @type {HTMLSelectElement} */ (courseForm.elements.namedItem("provider_id"));
  select.replaceChildren(...roles.map((/** @type {any} */ r) => h("option", { value: String(r.org_id) }, [r.org_name || `机构 ${r.org_id}`])));
  fillCredentials($("#credentials"), roles);
  say("正在加载本机构课程…");
  await loadCourses();
  say("");
}
init().catch(sayError);
