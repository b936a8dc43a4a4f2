// @ts-check
/**
 * "My learning": the learner's sessions by state (live now, to come, over — with the replay when there is
 * one), their replays with how far they got, and their enrolled courses.
 */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, duration, h, hasRole, KIND, requireLogin, say, sayError, statusTag, when } from "../ui.js";

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

/**
 * What a learner can do with a session in its state.
 * @param {any} s a session with course_title (GET /api/me/learning)
 * @returns {(string | HTMLElement)[]}
 */
function sessionActions(s) {
  // Offline: signing in is done by scanning the venue's QR code; this shows where one stands.
  if (s.kind === "offline") return [h("a", { class: "button", href: `/checkin/${s.id}` }, ["签到状态"])];
  if (s.kind !== "live") return [];
  switch (s.status) {
    case "live":
      return [h("a", { class: "button primary", href: `/watch/${s.id}` }, ["进入直播间"])];
    case "scheduled":
      return [h("a", { class: "button", href: `/watch/${s.id}` }, ["进入直播间"])];
    case "ended":
      return s.replay
        ? [h("a", { class: "button", href: `/replays/${s.replay.id}` }, [`观看回放（${duration(s.replay.duration_s)}）`])]
        : [h("span", { class: "empty" }, ["暂无回放"])];
    default:
      return [h("span", { class: "empty" }, ["本课次未按计划开播"])];
  }
}

/** @param {any} s */
function sessionItem(s) {
  const actions = sessionActions(s);
  return h("li", { "data-session": String(s.id) }, [
    h("h3", {}, [s.title, " ", statusTag(s)]),
    h("div", { class: "meta" }, [
      h("span", {}, [`${when(s.scheduled_start)} – ${when(s.scheduled_end)}`]),
      h("span", {}, [KIND[s.kind] || s.kind]),
      ...(s.location ? [h("span", {}, [`地点：${s.location}`])] : []),
      h("a", { href: `/courses/${s.course_id}` }, [s.course_title]),
    ]),
    ...(actions.length ? [h("div", { class: "actions" }, actions)] : []),
  ]);
}

/** @param {any} r a replay with the learner's progress */
function replayItem(r) {
  const total = Number(r.duration_s) || 0;
  const at = r.progress ? Math.min(Number(r.progress.position_s) || 0, total) : 0;
  // The last few seconds (credits, a goodbye) need not be watched for a replay to count as seen.
  const done = r.progress && total - at <= Math.min(5, total * 0.05);
  const share = total > 0 ? Math.round((at / total) * 100) : 0;
  const watched = !r.progress ? "尚未观看" : done ? "已看完" : `已看到 ${duration(at)}（${share}%）`;
  return h("li", { "data-replay": r.id }, [
    h("h3", {}, [r.session_title]),
    h("div", { class: "meta" }, [
      h("a", { href: `/courses/${r.course_id}` }, [r.course_title]),
      h("span", {}, [`时长 ${duration(total)}`]),
      h("span", { class: "watched" }, [watched]),
    ]),
    h("div", { class: "progress", role: "progressbar", "aria-label": "观看进度", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(share) }, [
      h("span", { style: `width: ${share}%` }, []),
    ]),
    h("div", { class: "actions" }, [h("a", { class: "button", href: `/replays/${r.id}` }, [r.progress && !done ? "继续观看" : "观看回放"])]),
  ]);
}

/**
 * @param {string} selector
 * @param {HTMLElement[]} items
 * @param {string} empty
 */
function fill(selector, items, empty) {
  $(selector).replaceChildren(...(items.length ? items : [h("li", { class: "empty" }, [empty])]));
}

const PLATFORM = /** @type {Record<string, string>} */ ({ tencent: "腾讯会议", dingtalk: "钉钉" });

/** The learner's own Tencent/DingTalk accounts: listed with whether they are verified, and a form to link one. */
async function loadAccounts() {
  const res = await api("GET", "/api/me/external-accounts");
  const accounts = res.accounts || [];
  fill(
    "#accounts",
    accounts.map((/** @type {any} */ a) =>
      h("li", {}, [
        `${PLATFORM[a.platform] || a.platform}：${a.external_user_id} `,
        h("span", { class: a.verified ? "tag" : "tag muted" }, [a.verified ? "已核实" : "待核实"]),
      ]),
    ),
    "尚未关联会议账号",
  );
  $("#accounts-section").hidden = false;
}

/** @param {SubmitEvent} ev */
async function linkAccount(ev) {
  ev.preventDefault();
  const form = /** @type {HTMLFormElement} */ (ev.target);
  const data = new FormData(form);
  try {
    await api("PUT", `/api/me/external-accounts/${data.get("platform")}`, {
      external_user_id: String(data.get("external_user_id") || "").trim(),
    });
    form.reset();
    say("已保存会议账号，核实后即可用于导入的参会记录。");
    await loadAccounts();
  } catch (err) {
    sayError(err);
  }
}

async function load() {
  const me = await requireLogin();
  if (!me) return;
  if (!hasRole(me, "learner")) {
    const notice = $("#not-learner");
    notice.textContent = "您的账号没有学员身份，这里不会有报名的课程。";
    if (hasRole(me, "expert")) notice.append(" ", h("a", { href: "/teach" }, ["去我的授课"]));
    notice.hidden = false;
  }
  say("正在加载…");
  try {
    const res = await api("GET", "/api/me/learning?page_size=100");
    const items = res.items || [];
    // Sessions not over yet across every enrolled course, soonest first: live ones get their own group.
    const current = res.upcoming || [];
    const live = current.filter((/** @type {any} */ s) => s.status === "live");
    $("#live-section").hidden = live.length === 0;
    $("#live").replaceChildren(...live.map(sessionItem));
    fill("#upcoming", current.filter((/** @type {any} */ s) => s.status !== "live").map(sessionItem), "暂无即将开始的课次");
    fill("#past", (res.past || []).map(sessionItem), "暂无已结束的课次");
    fill("#replays", (res.replays || []).map(replayItem), "暂无回放");
    $("#learning").replaceChildren(
      ...(items.length
        ? [
            ...items.map((/** @type {any} */ e) => courseItem(e.course)),
            ...(res.total > items.length ? [h("li", { class: "meta" }, [`另有 ${res.total - items.length} 门课程未列出`])] : []),
          ]
        : [h("li", {}, ["还没有报名课程，去", h("a", { href: "/courses" }, ["课程目录"]), "看看吧。"])]),
    );
    say("");
  } catch (err) {
    sayError(err);
  }
  if (hasRole(me, "learner")) {
    $("#account-form").addEventListener("submit", linkAccount);
    await loadAccounts().catch(sayError);
  }
}
load();
