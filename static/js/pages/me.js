// @ts-check
/** "My learning": enrolled courses and upcoming sessions of the logged-in learner. */
import { api } from "../api.js";
import { $, CATEGORY, h, sayError, when, whoami } from "../ui.js";

async function load() {
  const me = await whoami().catch(() => null);
  if (!me) {
    location.href = `/login?next=${encodeURIComponent("/me")}`;
    return;
  }
  try {
    const res = await api("GET", "/api/me/learning");
    const items = res.items || [];
    /** @type {HTMLElement[]} */
    const upcoming = [];
    $("#learning").replaceChildren(
      ...(items.length
        ? items.map((/** @type {any} */ e) => {
            const course = e.course || e;
            for (const s of e.upcoming_sessions || []) {
              upcoming.push(h("li", {}, [
                h("h3", {}, [`${course.title} · ${s.title}`]),
                h("div", { class: "meta" }, [h("span", {}, [when(s.scheduled_start)])]),
              ]));
            }
            return h("li", {}, [
              h("h3", {}, [h("a", { href: `/courses/${course.id}` }, [course.title])]),
              h("div", { class: "meta" }, [
                h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
                h("span", {}, [`${course.credit_hours} 学时`]),
              ]),
            ]);
          })
        : [h("li", {}, ["还没有报名课程，去", h("a", { href: "/courses" }, ["课程目录"]), "看看吧。"])]),
    );
    $("#upcoming").replaceChildren(...(upcoming.length ? upcoming : [h("li", {}, ["暂无即将开始的课次"])]));
  } catch (err) {
    sayError(err);
  }
}
load();
