// @ts-check
/** "My learning": the logged-in learner's enrolled courses and, across them, the upcoming sessions. */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, h, KIND, requireLogin, say, sayError, when } from "../ui.js";

/** @param {any} course */
function courseItem(course) {
  const meta = [
    h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
    h("span", {}, [DELIVERY[course.delivery] || course.delivery]),
    h("span", {}, [`${course.credit_hours} 学时`]),
  ];
  if (course.provider_name) meta.push(h("span", {}, [course.provider_name]));
  return h("li", {}, [h("h3", {}, [h("a", { href: `/courses/${course.id}` }, [course.title])]), h("div", { class: "meta" }, meta)]);
}

/** @param {{course: any, session: any}} entry */
function sessionItem({ course, session }) {
  return h("li", {}, [
    h("h3", {}, [session.title]),
    h("div", { class: "meta" }, [
      h("span", {}, [`${when(session.scheduled_start)} – ${when(session.scheduled_end)}`]),
      h("span", {}, [KIND[session.kind] || session.kind]),
      h("a", { href: `/courses/${course.id}` }, [course.title]),
    ]),
    ...(session.kind === "live" ? [h("a", { class: "button small", href: `/watch/${session.id}` }, ["进入直播间"])] : []),
  ]);
}

async function load() {
  const me = await requireLogin();
  if (!me) return;
  say("正在加载…");
  try {
    const res = await api("GET", "/api/me/learning?page_size=100");
    const items = res.items || [];
    // The API lists the next sessions across every enrolled course, soonest first.
    const upcoming = (res.upcoming || []).map((/** @type {any} */ s) => ({
      course: { id: s.course_id, title: s.course_title },
      session: s,
    }));
    $("#learning").replaceChildren(
      ...(items.length
        ? [
            ...items.map((/** @type {any} */ e) => courseItem(e.course)),
            ...(res.total > items.length ? [h("li", { class: "meta" }, [`另有 ${res.total - items.length} 门课程未列出`])] : []),
          ]
        : [h("li", {}, ["还没有报名课程，去", h("a", { href: "/courses" }, ["课程目录"]), "看看吧。"])]),
    );
    $("#upcoming").replaceChildren(...(upcoming.length ? upcoming.map(sessionItem) : [h("li", {}, ["暂无即将开始的课次"])]));
    say("");
  } catch (err) {
    sayError(err);
  }
}
load();
