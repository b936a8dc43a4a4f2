// @ts-check
/**
 * 年度培训计划 (employer administrators): draft a plan for a year, add items (a course or a category, the
 * staff, a target per person), publish, enroll the staff of course items, and see plan vs actual per item
 * and per person (docs/programme.md).
 */
import { api, ApiError } from "../api.js";
import { $, busy, CATEGORY, errorText, h, requireLogin, say, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const PLAN_STATUS = { draft: "草稿", published: "已发布" };
const panelMessage = $("#panel-message");

/**
 * The API's refusals in Chinese.
 * @param {unknown} err
 */
function text(err) {
  if (!(err instanceof ApiError)) return errorText(err);
  const m = err.message;
  if (/already has a training plan/.test(m)) return "本单位该年度已有培训计划。";
  if (/a published plan cannot/.test(m)) return "计划已发布：已有项目不能修改或删除，只能新增项目。";
  if (/without items cannot be published/.test(m)) return "计划还没有项目，不能发布。";
  if (/already published/.test(m)) return "计划已发布。";
  if (/publish the plan before enrolling/.test(m)) return "请先发布计划，再为人员报名。";
  if (/not staff of this employer/.test(m)) return "只能选择本单位的人员。";
  if (/targets at least one person/.test(m)) return "请至少选择一名人员。";
  if (/needs a course_id or a category/.test(m)) return "请选择课程或科目类别。";
  if (/plan published courses only/.test(m)) return "只能选择已发布的课程。";
  if (/target_xueshi/.test(m)) return "目标学时须大于 0，最多保留一位小数。";
  return errorText(err);
}

/** @param {unknown} err @param {HTMLElement | null} [box] */
function fail(err, box = document.getElementById("message")) {
  if (err instanceof ApiError && (err.status === 401 || err.field === "X-CSRF-Token")) sayError(err, box);
  else say(text(err), "error", box);
}

const thisYear = Number(new Intl.DateTimeFormat("en", { timeZone: "Asia/Shanghai", year: "numeric" }).format(new Date()));
/** @type {number} the employer whose plans are shown */
let orgId = 0;
/** @type {any} the plan open in the panel */
let plan = null;

/** @param {any} item */
function itemLabel(item) {
  if (item.course) return `课程：${item.course.title}`;
  return `${CATEGORY[item.category] || item.category}（自选课程）`;
}

async function loadPlans() {
  const data = await api("GET", `/api/employers/${orgId}/plans`);
  $("#plans").replaceChildren(...(data.items.length ? data.items.map((/** @type {any} */ p) => {
    const open = h("a", { href: "#", "data-plan": String(p.id) }, [`${p.year} 年：${p.title}`]);
    open.addEventListener("click", (ev) => { ev.preventDefault(); openPlan(p.id).catch((err) => fail(err)); });
    return h("li", {}, [
      h("h3", {}, [open]),
      h("div", { class: "meta" }, [h("span", { class: "badge" }, [PLAN_STATUS[p.status] || p.status]), h("span", {}, [`${p.item_count} 个项目`])]),
    ]);
  }) : [h("li", { class: "empty" }, ["还没有培训计划。"])]));
}

/** @param {number} id */
async function openPlan(id) {
  plan = await api("GET", `/api/plans/${id}`);
  const draft = plan.status === "draft";
  $("#plan-panel").hidden = false;
  $("#plan-title").textContent = `${plan.year} 年：${plan.title}`;
  $("#plan-meta").replaceChildren(
    h("span", { class: "badge" }, [PLAN_STATUS[plan.status] || plan.status]),
    h("span", {}, [plan.published_at ? `发布于 ${when(plan.published_at)}` : "草稿：可修改、删除项目"]),
  );
  $("#publish").hidden = !draft;
  $("#enroll").hidden = draft;
  $("#rename").hidden = !draft;
  /** @type {HTMLInputElement} */ (/** @type {HTMLFormElement} */ ($("#rename")).elements.namedItem("title")).value = plan.title;
  $("#items").replaceChildren(...(plan.items.length ? plan.items.map((/** @type {any} */ item) => {
    const parts = [
      h("h3", {}, [itemLabel(item)]),
      h("div", { class: "meta" }, [
        h("span", {}, [`每人目标 ${item.target_xueshi} 学时`]),
        h("span", {}, [`${item.people.length} 人：${item.people.map((/** @type {any} */ p) => p.name).join("、")}`]),
        ...(item.note ? [h("span", {}, [item.note])] : []),
      ]),
    ];
    if (draft) {
      const remove = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["删除项目"]));
      remove.addEventListener("click", async () => {
        const done = busy(remove, "正在删除…");
        try {
          await api("DELETE", `/api/plans/${plan.id}/items/${item.id}`);
          await openPlan(plan.id);
        } catch (err) {
          fail(err, panelMessage);
        } finally {
          done();
        }
      });
      parts.push(h("div", { class: "actions" }, [remove]));
    }
    return h("li", { "data-item": String(item.id) }, parts);
  }) : [h("li", { class: "empty" }, ["还没有项目。"])]));
  await findStaff();
  await showProgress();
}

async function showProgress() {
  const data = await api("GET", `/api/plans/${plan.id}/progress`);
  $("#as-of").textContent = `（截至 ${when(data.as_of)}）`;
  $("#progress").replaceChildren(...data.items.map((/** @type {any} */ item) => {
    const t = item.totals;
    const rows = item.people.map((/** @type {any} */ p) => h("tr", {}, [
      h("td", {}, [p.name]),
      h("td", {}, [p.registered_xueshi]),
      h("td", {}, [p.pending_xueshi]),
      h("td", {}, [`${p.completion_pct}%`]),
      h("td", { class: p.met ? "met" : "short" }, [p.met ? "已完成" : `差 ${p.short_by_xueshi}`]),
      h("td", {}, [p.enrolled === null ? "—" : p.enrolled ? "已报名" : "未报名"]),
    ]));
    return h("div", { "data-progress-item": String(item.item_id) }, [
      h("h4", {}, [`${itemLabel(item)} · 每人 ${item.target_xueshi} 学时`]),
      h("p", { class: "meta" }, [
        h("span", {}, [`完成率 ${t.completion_pct}%`]),
        h("span", {}, [`已完成 ${t.met} / ${t.people} 人`]),
        h("span", {}, [`已认定 ${t.registered_xueshi} 学时，待审核 ${t.pending_xueshi} 学时`]),
      ]),
      h("div", { class: "table-wrap" }, [h("table", {}, [
        h("thead", {}, [h("tr", {}, ["姓名", "已认定", "待审核", "完成率", "差额", "报名"].map((c) => h("th", {}, [c])))]),
        h("tbody", {}, rows),
      ])]),
    ]);
  }));
  const labels = new Map(plan.items.map((/** @type {any} */ i) => [i.id, itemLabel(i)]));
  $("#people").replaceChildren(...data.people.map((/** @type {any} */ p) => h("tr", {}, [
    h("td", {}, [p.name]),
    h("td", {}, [p.target_xueshi]),
    h("td", {}, [p.counted_xueshi]),
    h("td", {}, [`${p.completion_pct}%`]),
    h("td", { class: p.short_items.length ? "short" : "met" }, [p.short_items.length ? p.short_items.map((/** @type {number} */ i) => labels.get(i) || `#${i}`).join("；") : "无"]),
  ])));
}

const itemForm = /** @type {HTMLFormElement} */ ($("#new-item"));
/** @param {string} name */
const input = (name) => /** @type {HTMLInputElement} */ (itemForm.elements.namedItem(name));

async function findStaff() {
  const q = input("staff_q").value.trim();
  const data = await api("GET", `/api/plans/${plan.id}/staff?q=${encodeURIComponent(q)}&page_size=100`);
  const checked = new Set([...itemForm.querySelectorAll("input[name=person]:checked")].map((el) => /** @type {HTMLInputElement} */ (el).value));
  $("#staff").replaceChildren(...(data.items.length ? data.items.map((/** @type {any} */ p) => {
    const box = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", name: "person", value: String(p.id) }));
    box.checked = checked.has(String(p.id));
    return h("label", { class: "check" }, [box, `${p.name}（${p.phone}）`]);
  }) : [h("p", { class: "hint" }, ["没有找到本单位人员。"])]));
}

async function findCourses() {
  const q = input("course_q").value.trim();
  const data = await api("GET", `/api/courses?q=${encodeURIComponent(q)}&page_size=50`);
  const select = /** @type {HTMLSelectElement} */ (itemForm.elements.namedItem("course_id"));
  select.replaceChildren(...data.items.map((/** @type {any} */ c) => h("option", { value: String(c.id) }, [`${c.title}（${CATEGORY[c.category] || c.category}，${Number(c.credit_hours)} 学时）`])));
  if (!data.items.length) say("没有找到课程。", "info", $("#item-message"));
}

/** @param {any} me */
async function init(me) {
  const orgs = (me.roles || []).filter((/** @type {any} */ r) => r.role === "employer_admin" && r.org_id);
  if (!orgs.length) {
    say("只有用人单位管理员可以管理年度培训计划。", "error");
    $("#new-plan").hidden = true;
    return;
  }
  const orgSelect = /** @type {HTMLSelectElement} */ ($("#org"));
  for (const r of orgs) orgSelect.append(h("option", { value: String(r.org_id) }, [r.org_name || `单位 ${r.org_id}`]));
  $("#org-row").hidden = orgs.length < 2;
  orgId = Number(orgSelect.value);
  orgSelect.addEventListener("change", () => {
    orgId = Number(orgSelect.value);
    $("#plan-panel").hidden = true;
    loadPlans().catch((err) => fail(err));
  });
  const planForm = /** @type {HTMLFormElement} */ ($("#new-plan"));
  const yearSelect = /** @type {HTMLSelectElement} */ (planForm.elements.namedItem("year"));
  for (const y of [thisYear, thisYear + 1, thisYear - 1]) yearSelect.append(h("option", { value: String(y) }, [`${y} 年`]));
  planForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(planForm);
    const button = /** @type {HTMLButtonElement} */ (planForm.querySelector("button[type=submit]"));
    const done = busy(button, "正在创建…");
    try {
      const created = await api("POST", `/api/employers/${orgId}/plans`, { year: Number(data.get("year")), title: String(data.get("title") || "").trim() });
      say("计划已创建，请添加项目。", "ok");
      await loadPlans();
      await openPlan(created.id);
    } catch (err) {
      fail(err);
    } finally {
      done();
    }
  });
  const renameForm = /** @type {HTMLFormElement} */ ($("#rename"));
  renameForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("PATCH", `/api/plans/${plan.id}`, { title: String(new FormData(renameForm).get("title") || "").trim() });
      await openPlan(plan.id);
      await loadPlans();
    } catch (err) {
      fail(err, panelMessage);
    }
  });
  for (const [id, path, ok] of /** @type {[string, string, string][]} */ ([
    ["#publish", "publish", "计划已发布。"],
    ["#enroll", "enroll", ""],
  ])) {
    const button = /** @type {HTMLButtonElement} */ ($(id));
    button.addEventListener("click", async () => {
      const done = busy(button, "正在提交…");
      try {
        const result = await api("POST", `/api/plans/${plan.id}/${path}`);
        const failed = path === "enroll" ? result.items.filter((/** @type {any} */ r) => r.error) : [];
        const summary = path === "enroll" ? `已为 ${result.created} 人次报名。${failed.length ? `${failed.length} 个项目未能报名（如课程名额已满）。` : ""}` : ok;
        say(summary, failed.length ? "error" : "ok", panelMessage);
        await openPlan(plan.id);
        await loadPlans();
      } catch (err) {
        fail(err, panelMessage);
      } finally {
        done();
      }
    });
  }
  const kind = /** @type {HTMLSelectElement} */ (itemForm.elements.namedItem("kind"));
  kind.addEventListener("change", () => {
    $("#course-row").hidden = kind.value !== "course";
    $("#category-row").hidden = kind.value !== "category";
  });
  $("#find-course").addEventListener("click", () => { findCourses().catch((err) => fail(err, $("#item-message"))); });
  $("#find-staff").addEventListener("click", () => { findStaff().catch((err) => fail(err, $("#item-message"))); });
  itemForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("#item-message");
    const people = [...itemForm.querySelectorAll("input[name=person]:checked")].map((el) => Number(/** @type {HTMLInputElement} */ (el).value));
    /** @type {Record<string, unknown>} */
    const body = { person_ids: people, target_xueshi: Number(input("target_xueshi").value), note: input("note").value.trim() };
    if (kind.value === "course") body.course_id = Number(/** @type {HTMLSelectElement} */ (itemForm.elements.namedItem("course_id")).value) || undefined;
    else body.category = /** @type {HTMLSelectElement} */ (itemForm.elements.namedItem("category")).value;
    const button = /** @type {HTMLButtonElement} */ (itemForm.querySelector("button[type=submit]"));
    const done = busy(button, "正在保存…");
    try {
      await api("POST", `/api/plans/${plan.id}/items`, body);
      say("项目已添加。", "ok", box);
      await openPlan(plan.id);
      await loadPlans();
    } catch (err) {
      fail(err, box);
    } finally {
      done();
    }
  });
  await findCourses();
  await loadPlans();
}

requireLogin()
  .then((me) => (me ? init(me) : undefined))
  .catch((err) => fail(err));
