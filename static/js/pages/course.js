// @ts-check
/** Course detail: description, sessions, enroll / withdraw. */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, h, say, sayError, when, whoami } from "../ui.js";

const courseId = Number(location.pathname.split("/").filter(Boolean)[1]);
const enrollBtn = /** @type {HTMLButtonElement} */ ($("#enroll"));
const withdrawBtn = /** @type {HTMLButtonElement} */ ($("#withdraw"));

/** @param {any} s */
function sessionItem(s) {
  return h("li", {}, [
    h("h3", {}, [s.title]),
    h("div", { class: "meta" }, [
      h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
      h("span", {}, [DELIVERY[s.kind] || s.kind]),
    ]),
  ]);
}

/** @param {boolean} enrolled */
function showEnrolled(enrolled) {
  enrollBtn.hidden = enrolled;
  withdrawBtn.hidden = !enrolled;
}

async function load() {
  const me = await whoami().catch(() => null);
  try {
    const course = await api("GET", `/api/courses/${courseId}`);
    document.title = `${course.title} · Lectern 讲堂`;
    $("#title").textContent = course.title;
    $("#description").textContent = course.description || "";
    $("#meta").replaceChildren(
      h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
      h("span", {}, [DELIVERY[course.delivery] || course.delivery]),
      h("span", {}, [`${course.credit_hours} 学时`]),
      h("span", {}, [course.provider_name || course.provider?.name || ""]),
    );
    const sessions = course.sessions || [];
    $("#sessions").replaceChildren(...(sessions.length ? sessions.map(sessionItem) : [h("li", {}, ["暂无课次安排"])]));
    let enrolled = false;
    if (me) {
      const mine = await api("GET", "/api/me/learning");
      enrolled = (mine.items || []).some((/** @type {any} */ e) => (e.course?.id ?? e.course_id) === courseId);
    }
    showEnrolled(enrolled);
  } catch (err) {
    sayError(err);
  }
}

enrollBtn.addEventListener("click", async () => {
  const me = await whoami().catch(() => null);
  if (!me) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    return;
  }
  try {
    await api("POST", `/api/courses/${courseId}/enroll`, {});
    showEnrolled(true);
    say("报名成功，可在“我的学习”中查看。", "ok");
  } catch (err) {
    sayError(err);
  }
});
withdrawBtn.addEventListener("click", async () => {
  try {
    await api("POST", `/api/courses/${courseId}/withdraw`, {});
    showEnrolled(false);
    say("已退出该课程。", "ok");
  } catch (err) {
    sayError(err);
  }
});
load();
