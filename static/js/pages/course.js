// @ts-check
/** Course detail: description, sessions with their experts and state, replays, enroll / withdraw. */
import { api } from "../api.js";
import {
  $, busy, CATEGORY, DELIVERY, duration, goToLogin, h, hasRole, KIND, PLATFORM, say, sayError, STATUS, statusTag, when, whoami,
} from "../ui.js";

const courseId = Number(location.pathname.split("/").filter(Boolean)[1]);
const enrollBtn = /** @type {HTMLButtonElement} */ ($("#enroll"));
const withdrawBtn = /** @type {HTMLButtonElement} */ ($("#withdraw"));
/** @type {any} */
let me = null;

/**
 * Whether the logged-in person is one of the session's experts.
 * @param {any} s
 */
function teaches(s) {
  return Boolean(me) && (s.experts || []).some((/** @type {any} */ e) => e.id === me.person?.id);
}

/**
 * The way into a session in its state: the studio for its experts (until it has ended), the live room
 * for everyone else while it is not over, the replay once it is.
 * @param {any} s
 * @returns {HTMLElement[]}
 */
function sessionLinks(s) {
  if (s.kind !== "live") return [];
  if (s.status === "ended") {
    if (!s.replay) return [];
    // The server names the replay (its id) only to those who may watch it: enrolled learners, experts, staff.
    if (!s.replay.id) return [h("span", { class: "empty" }, [`有回放（${duration(s.replay.duration_s)}），报名后可观看`])];
    return [h("a", { class: "button", href: `/replays/${s.replay.id}` }, [`观看回放（${duration(s.replay.duration_s)}）`])];
  }
  if (teaches(s)) return [h("a", { class: "button primary", href: `/studio/${s.id}` }, ["进入讲师直播间"])];
  if (s.status === "missed") return [h("span", { class: "empty" }, ["本课次未按计划开播"])];
  return [h("a", { class: `button${s.status === "live" ? " primary" : ""}`, href: `/watch/${s.id}` }, ["进入直播间"])];
}

/** @param {any} s */
function sessionItem(s) {
  const meta = [
    statusTag(s),
    h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
    h("span", {}, [KIND[s.kind] || s.kind]),
    ...(s.location ? [h("span", {}, [`地点：${s.location}`])] : []),
  ];
  if (s.external_platform && s.external_platform !== "none") {
    meta.push(h("span", {}, [PLATFORM[s.external_platform] || s.external_platform]));
  }
  const experts = (s.experts || []).map((/** @type {any} */ e) => e.name).filter(Boolean);
  if (experts.length) meta.push(h("span", {}, [`主讲：${experts.join("、")}`]));
  const links = sessionLinks(s);
  return h("li", { "data-session": String(s.id) }, [
    h("h3", {}, [s.title]),
    h("div", { class: "meta" }, meta),
    ...(links.length ? [h("div", { class: "actions" }, links)] : []),
  ]);
}

/** @param {boolean | null} enrolled null: enrollment not possible here (e.g. a draft) */
function showEnrolled(enrolled) {
  enrollBtn.hidden = enrolled !== false;
  withdrawBtn.hidden = enrolled !== true;
}

async function load() {
  me = await whoami().catch(() => null);
  say("正在加载…");
  try {
    const course = await api("GET", `/api/courses/${courseId}`);
    document.title = `${course.title} · Lectern 讲堂`;
    $("#title").textContent = course.title;
    $("#description").textContent = course.description || "";
    const meta = [
      h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
      h("span", {}, [DELIVERY[course.delivery] || course.delivery]),
      h("span", {}, [`${course.credit_hours} 学时`]),
    ];
    if (course.industry) meta.push(h("span", {}, [course.industry]));
    if (course.capacity) meta.push(h("span", {}, [`限 ${course.capacity} 人`]));
    if (course.status !== "published") meta.push(h("span", { class: "tag" }, [STATUS[course.status] || course.status]));
    if (course.provider_name) meta.push(h("span", {}, [course.provider_name]));
    $("#meta").replaceChildren(...meta);
    const sessions = course.sessions || [];
    $("#sessions").replaceChildren(...(sessions.length ? sessions.map(sessionItem) : [h("li", {}, ["暂无课次安排"])]));
    const replays = course.replays || [];
    $("#replays-section").hidden = replays.length === 0;
    $("#replays").replaceChildren(
      ...replays.map((/** @type {any} */ r) =>
        h("li", {}, [
          h("h3", {}, [r.id ? h("a", { href: `/replays/${r.id}` }, [`观看回放：${r.session_title}`]) : `回放：${r.session_title}`]),
          h("div", { class: "meta" }, [
            h("span", {}, [`时长 ${duration(r.duration_s)}`]),
            ...(r.id ? [] : [h("span", {}, ["报名后可观看"])]),
          ]),
        ]),
      ),
    );
    let enrolled = /** @type {boolean | null} */ (course.status === "published" ? false : null);
    if (me && enrolled === false) enrolled = Boolean(course.enrolled);
    // Its experts teach the course, and only learners enroll: neither is offered 报名学习.
    const teaching = sessions.some(teaches);
    const mayEnroll = !me || hasRole(me, "learner");
    // A recorded course with no replay yet has nothing to watch: the server refuses enrolling in it.
    const empty = course.delivery === "recorded" && replays.length === 0;
    showEnrolled(enrolled === false && (teaching || !mayEnroll || empty) ? null : enrolled);
    if (teaching) say("您是本课程的主讲专家：从课次的“进入讲师直播间”开始授课。");
    else if (enrolled === null) say("该课程未发布，不接受报名。");
    else if (empty && !enrolled) say("该录播课程暂无可观看的内容，暂不能报名。");
    else if (!mayEnroll && !enrolled) say("只有学员账号可以报名课程。");
    else say("");
  } catch (err) {
    sayError(err);
  }
}

enrollBtn.addEventListener("click", async () => {
  if (!me) {
    goToLogin();
    return;
  }
  const done = busy(enrollBtn, "正在报名…");
  try {
    await api("POST", `/api/courses/${courseId}/enroll`, {});
    await load(); // enrolled, the course's replays open (their links appear)
    showEnrolled(true);
    say("报名成功，可在“我的学习”中查看。", "ok");
    $("#message").append(" ", h("a", { href: "/me" }, ["去我的学习"]));
  } catch (err) {
    sayError(err);
  } finally {
    done();
  }
});
withdrawBtn.addEventListener("click", async () => {
  if (!confirm("确定退出该课程吗？")) return;
  const done = busy(withdrawBtn, "正在退出…");
  try {
    await api("POST", `/api/courses/${courseId}/withdraw`, {});
    showEnrolled(false);
    say("已退出该课程。", "ok");
  } catch (err) {
    sayError(err);
  } finally {
    done();
  }
});
load();
