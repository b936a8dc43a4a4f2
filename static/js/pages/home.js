// @ts-check
/**
 * Landing page (also the 404/403 pages): the header's login state, and for a logged-in person what
 * Lectern has for each of their roles — their home page, or plainly that it does not exist yet.
 */
import { h, ROLE, whoami } from "../ui.js";

/** role -> [link, its text] of the role's home page, or the plain truth that there is none yet. */
const HOMES = /** @type {Record<string, [string, string] | string>} */ ({
  learner: ["/me", "我的学习：报名的课程、直播与回放"],
  expert: ["/teach", "我的授课：您主讲的课次与讲师直播间"],
  provider_admin: ["/provider", "机构后台：开设课程、安排课次与专家"],
  employer_admin: ["/employer", "单位审核：审核职工的学时；另有学时台账（/employer/staff）和年度培训计划（/employer/plans）"],
  reviewer: ["/review/courseware", "课件审核：专家上传的共享课件，审核通过后向全体学员开放"],
  bureau: ["/supervision", "监管：各机构的课程、课次、学时、审核时效与核对（超额标记）"],
  admin: ["/admin/credit-policy", "学时规则：计算学时的规则版本（待核查见导航）"],
});

/** @param {any} me */
function welcome(me) {
  const box = document.getElementById("welcome");
  if (!box || !me) return;
  const roles = [...new Set((me.roles || []).map((/** @type {{role: string}} */ r) => r.role))];
  const lines = roles.map((role) => {
    const home = HOMES[role];
    const label = `${ROLE[role] || role}：`;
    if (typeof home === "string") return h("li", {}, [label, home, "目前可以浏览", h("a", { href: "/courses" }, ["课程目录"]), "。"]);
    if (home) return h("li", {}, [label, h("a", { href: home[0] }, [home[1]])]);
    return h("li", {}, [label]);
  });
  box.replaceChildren(
    h("p", {}, [`您好，${me.person?.name || ""}。`]),
    ...(lines.length ? [h("ul", { class: "plain" }, lines)] : [h("p", {}, ["您的账号还没有任何角色，可以先浏览课程目录。"])]),
  );
  box.hidden = false;
}

whoami().then(welcome).catch(() => undefined);
