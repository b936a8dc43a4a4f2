// @ts-check
/** Provider console: create courses and sessions, assign experts, publish, see enrollments. */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, STATUS, h, say, sayError, when, whoami } from "../ui.js";

const courseForm = /** @type {HTMLFormElement} */ ($("#new-course"));
const sessionForm = /** @type {HTMLFormElement} */ ($("#new-session"));
/** @type {any} */
let current = null;
/** @type {number[]} */
let orgIds = [];

/** @param {FormData} data @param {string} name */
const text = (data, name) => String(data.get(name) || "").trim();

/** datetime-local value (local time) → ISO instant with offset. @param {string} value */
const instant = (value) => new Date(value).toISOString();

async function loadCourses() {
  /** @type {any[]} */
  const all = [];
  for (const org of orgIds) {
    const res = await api("GET", `/api/courses?provider_id=${org}&status=all&page_size=100`);
    all.push(...res.items);
  }
  $("#my-courses").replaceChildren(
    ...(all.length
      ? all.map((c) => {
          const open = h("a", { href: "#", "data-course": String(c.id) }, [c.title]);
          open.addEventListener("click", (ev) => { ev.preventDefault(); openCourse(c.id); });
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
      : [h("li", {}, ["还没有课程"])]),
  );
}

/** @param {number} id */
async function openCourse(id) {
  try {
    current = await api("GET", `/api/courses/${id}`);
    $("#course-panel").hidden = false;
    $("#panel-title").textContent = current.title;
    /** @type {HTMLButtonElement} */ ($("#publish")).hidden = current.status !== "draft";
    $("#panel-sessions").replaceChildren(
      ...(current.sessions || []).map((/** @type {any} */ s) =>
        h("li", {}, [h("h3", {}, [s.title]), h("div", { class: "meta" }, [
          h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
          h("span", {}, [`专家：${(s.experts || []).map((/** @type {any} */ e) => e.name).join("、") || "未指定"}`]),
        ])]),
      ),
    );
    const res = await api("GET", `/api/courses/${id}/enrollments?page_size=100`);
    $("#enrollments").replaceChildren(
      ...res.items.map((/** @type {any} */ e) => h("tr", {}, [
        h("td", {}, [e.person?.name || e.name || ""]),
        h("td", {}, [e.person?.phone || e.phone || ""]),
        h("td", {}, [when(e.enrolled_at)]),
        h("td", {}, [e.status === "enrolled" ? "已报名" : "已退出"]),
      ])),
    );
    $("#course-panel").scrollIntoView();
  } catch (err) {
    sayError(err);
  }
}

courseForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(courseForm);
  /** @type {Record<string, unknown>} */
  const body = {
    provider_org_id: Number(text(data, "provider_org_id")),
    title: text(data, "title"),
    description: text(data, "description"),
    category: text(data, "category"),
    delivery: text(data, "delivery"),
    credit_hours: Number(text(data, "credit_hours")),
  };
  if (text(data, "industry")) body.industry = text(data, "industry");
  if (text(data, "capacity")) body.capacity = Number(text(data, "capacity"));
  try {
    const course = await api("POST", "/api/courses", body);
    say(`课程“${course.title}”已创建（草稿）。`, "ok");
    courseForm.reset();
    await loadCourses();
    await openCourse(course.id);
  } catch (err) {
    sayError(err);
  }
});

sessionForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!current) return;
  const data = new FormData(sessionForm);
  try {
    const session = await api("POST", `/api/courses/${current.id}/sessions`, {
      title: text(data, "title"),
      kind: text(data, "kind"),
      scheduled_start: instant(text(data, "scheduled_start")),
      scheduled_end: instant(text(data, "scheduled_end")),
    });
    const experts = text(data, "experts").split(/[,，\s]+/).filter(Boolean).map(Number);
    if (experts.length) await api("PUT", `/api/sessions/${session.id}/experts`, { person_ids: experts });
    say(`课次“${session.title}”已创建。`, "ok");
    sessionForm.reset();
    await openCourse(current.id);
  } catch (err) {
    sayError(err);
  }
});

$("#publish").addEventListener("click", async () => {
  if (!current) return;
  try {
    await api("POST", `/api/courses/${current.id}/publish`, {});
    say("课程已发布。", "ok");
    await loadCourses();
    await openCourse(current.id);
  } catch (err) {
    sayError(err);
  }
});

async function init() {
  const me = await whoami().catch(() => null);
  if (!me) {
    location.href = `/login?next=${encodeURIComponent("/provider")}`;
    return;
  }
  const roles = (me.roles || []).filter((/** @type {any} */ r) => r.role === "provider_admin");
  if (!roles.length) {
    say("您不是培训机构管理员，无法使用机构后台。", "error");
    courseForm.hidden = true;
    return;
  }
  orgIds = roles.map((/** @type {any} */ r) => r.org_id);
  const select = /** @type {HTMLSelectElement} */ (courseForm.elements.namedItem("provider_org_id"));
  select.replaceChildren(...roles.map((/** @type {any} */ r) => h("option", { value: String(r.org_id) }, [r.org_name || `机构 ${r.org_id}`])));
  await loadCourses();
}
init().catch(sayError);
