// @ts-check
/** "My teaching": the expert's sessions by state, each one tap from its studio; replays of those over. */
import { api } from "../api.js";
import { $, duration, h, hasRole, KIND, requireLogin, say, sayError, statusTag, when } from "../ui.js";

/**
 * How far away a start is, in words ("3 天后", "2 小时 5 分钟后"), or "" once it has passed.
 * @param {string} iso
 */
function startsIn(iso) {
  const minutes = Math.round((new Date(iso).getTime() - Date.now()) / 60_000);
  if (minutes <= 0) return "";
  if (minutes >= 48 * 60) return `${Math.floor(minutes / (24 * 60))} 天后开始`;
  if (minutes >= 60) return `${Math.floor(minutes / 60)} 小时 ${minutes % 60} 分钟后开始`;
  return `${minutes} 分钟后开始`;
}

/** @param {any} s a session with course_title (GET /api/me/teaching) */
function sessionItem(s) {
  const meta = [
    h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
    h("span", {}, [KIND[s.kind] || s.kind]),
    ...(s.location ? [h("span", {}, [`地点：${s.location}`])] : []),
    h("a", { href: `/courses/${s.course_id}` }, [s.course_title]),
  ];
  if (s.status === "scheduled" && startsIn(s.scheduled_start)) meta.push(h("span", {}, [startsIn(s.scheduled_start)]));
  /** @type {(string | HTMLElement)[]} */
  const actions = [];
  if (s.kind === "live" && s.status !== "ended") {
    // A missed lecture may still be given late: the studio says what learners see then.
    actions.push(h("a", { class: "button primary", href: `/studio/${s.id}` }, ["进入讲师直播间"]));
  }
  if (s.kind === "offline" && s.status !== "ended") {
    actions.push(h("a", { class: "button primary", href: `/venue/${s.id}` }, ["打开现场签到屏"]));
  }
  if (s.status === "ended") {
    actions.push(
      s.replay
        ? h("a", { class: "button", href: `/replays/${s.replay.id}` }, [`观看回放（${duration(s.replay.duration_s)}）`])
        : h("span", { class: "empty" }, [s.kind === "live" ? "暂无回放" : "非直播课次，无回放"]),
    );
  }
  return h("li", { "data-session": String(s.id) }, [
    h("h3", {}, [s.title, " ", statusTag(s)]),
    h("div", { class: "meta" }, meta),
    ...(actions.length ? [h("div", { class: "actions" }, actions)] : []),
  ]);
}

/**
 * @param {string} selector
 * @param {any[]} sessions
 * @param {string} empty
 */
function fill(selector, sessions, empty) {
  $(selector).replaceChildren(...(sessions.length ? sessions.map(sessionItem) : [h("li", { class: "empty" }, [empty])]));
}

async function load() {
  const me = await requireLogin();
  if (!me) return;
  if (!hasRole(me, "expert")) {
    const notice = $("#not-expert");
    notice.textContent = "您的账号没有授课专家身份：这里列出由培训机构安排您主讲的课次。";
    notice.hidden = false;
  }
  say("正在加载…");
  try {
    const res = await api("GET", "/api/me/teaching");
    const current = res.upcoming || [];
    const live = current.filter((/** @type {any} */ s) => s.status === "live");
    $("#live-section").hidden = live.length === 0;
    $("#live").replaceChildren(...live.map(sessionItem));
    fill("#upcoming", current.filter((/** @type {any} */ s) => s.status !== "live"), "暂无即将开始的课次");
    fill("#past", res.past || [], "暂无已结束的课次");
    say("");
  } catch (err) {
    sayError(err);
  }
}
load();
