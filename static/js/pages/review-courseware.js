// @ts-check
/** 课件审核: the CE association's reviewers see the versions submitted (oldest first), watch the video,
 * read the slides, and approve, reject (with comments) or revoke an approval (with comments). */
import { api } from "../api.js";
import { playRendition, reviewLines, slidesLink, stateBadge, versionMeta } from "../courseware-ui.js";
import { $, busy, CATEGORY, h, hasRole, requireLogin, say, sayError } from "../ui.js";

const PAGE_SIZE = 10;
let state = "submitted";
let page = 1;
let canDecide = false;

/** @type {Record<string, string>} */
const DONE = { approved: "已通过：课件已作为录播课程向全体学员开放。", rejected: "已退回，专家会看到您的意见。", revoked: "已撤销：课程已从目录下架，已获得的学时保留并标注。" };

/**
 * The viewer of one version: its video (played on demand) and its slides.
 * @param {any} v
 * @returns {HTMLElement}
 */
function viewer(v) {
  const box = h("div", { class: "viewer stack" });
  const actions = h("div", { class: "actions" });
  if (v.recording_id) {
    const play = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button", "data-action": "watch" }, ["观看视频"]));
    play.addEventListener("click", async () => {
      const video = /** @type {HTMLVideoElement} */ (h("video", { controls: "", playsinline: "", preload: "metadata" }));
      box.prepend(video);
      play.hidden = true;
      try {
        await playRendition(video, v.recording_id);
        video.muted = true; // autoplay is allowed muted; the reviewer turns the sound on
        await video.play().catch(() => {});
      } catch (err) {
        sayError(err);
      }
    });
    actions.append(play);
  }
  if (v.has_slides) {
    const read = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["查阅讲义"]));
    read.addEventListener("click", async () => {
      try {
        read.replaceWith(await slidesLink(v.id));
      } catch (err) {
        sayError(err);
      }
    });
    actions.append(read);
  }
  box.append(actions);
  return box;
}

/**
 * The decision form: approve / reject for a submitted version, revoke for an approved one.
 * @param {any} v
 * @returns {HTMLElement | null}
 */
function decisionForm(v) {
  const choices = v.review_state === "submitted" ? ["approved", "rejected"] : v.review_state === "approved" ? ["revoked"] : [];
  if (!canDecide || !choices.length) return null;
  const comments = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "comments", maxlength: "2000", placeholder: "审核意见（退回或撤销时必填）" }));
  const label = { approved: "通过", rejected: "退回", revoked: "撤销通过" };
  const form = h("form", { class: "decide stack" }, [
    h("label", {}, ["审核意见", comments]),
    h("div", { class: "actions" }, choices.map((c) =>
      h("button", { class: `button${c === "approved" ? " primary" : ""}`, type: "submit", value: c }, [label[/** @type {"approved"|"rejected"|"revoked"} */ (c)]]))),
  ]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = /** @type {HTMLButtonElement} */ (/** @type {SubmitEvent} */ (ev).submitter);
    const text = comments.value.trim();
    if (button.value !== "approved" && !text) {
      say("退回或撤销时请写明理由。", "error");
      comments.focus();
      return;
    }
    if (button.value === "revoked" && !confirm("撤销后课程将从目录下架，学员不能再观看。确定撤销吗？")) return;
    const done = busy(button, "正在提交…");
    try {
      await api("POST", `/api/courseware/versions/${v.id}/reviews`, { decision: button.value, comments: text });
      say(DONE[button.value] || "已提交。", "ok");
      await load();
    } catch (err) {
      sayError(err);
    } finally {
      done();
    }
  });
  return form;
}

/** @param {any} item {courseware, version, history} */
function queueItem(item) {
  const cw = item.courseware;
  const v = item.version;
  const history = (item.history || []).filter((/** @type {any} */ o) => o.reviews && o.reviews.length);
  const form = decisionForm(v);
  return h("li", { "data-version": String(v.id) }, [
    h("h3", {}, [cw.title, " ", stateBadge(v.review_state)]),
    h("div", { class: "meta" }, [
      h("span", { class: "tag" }, [CATEGORY[cw.category] || cw.category]),
      h("span", {}, [`专家：${cw.owner_name}`]),
      ...(cw.course_id && v.review_state === "approved" ? [h("a", { href: `/courses/${cw.course_id}` }, ["查看课程"])] : []),
    ]),
    versionMeta(v),
    ...(cw.description ? [h("p", {}, [cw.description])] : []),
    viewer(v),
    ...reviewLines(v.reviews),
    ...(history.length
      ? [h("details", { class: "history" }, [
          h("summary", {}, ["以往版本的审核记录"]),
          ...history.flatMap((/** @type {any} */ o) => [h("p", { class: "meta" }, [`第 ${o.version} 版`, " ", stateBadge(o.review_state)]), ...reviewLines(o.reviews)]),
        ])]
      : []),
    ...(form ? [form] : []),
  ]);
}

async function load() {
  try {
    const res = await api("GET", `/api/courseware/review-queue?state=${state}&page=${page}&page_size=${PAGE_SIZE}`);
    const items = res.items || [];
    const empty = { submitted: "暂无待审核的课件。", approved: "暂无已通过的课件。", decided: "暂无已处理的课件。" };
    $("#queue").replaceChildren(...(items.length ? items.map(queueItem) : [h("li", { class: "empty" }, [empty[/** @type {"submitted"} */ (state)] || ""])]));
    /** @type {HTMLButtonElement} */ ($("#prev")).disabled = page <= 1;
    /** @type {HTMLButtonElement} */ ($("#next")).disabled = !res.has_more;
  } catch (err) {
    sayError(err);
  }
}

async function start() {
  const me = await requireLogin();
  if (!me) return;
  canDecide = hasRole(me, "reviewer");
  if (!canDecide && !hasRole(me, "bureau") && !hasRole(me, "admin")) {
    say("只有继续教育协会的审核员可以审核课件。", "error");
    return;
  }
  if (!canDecide) say("您可以查看审核情况；审核决定由继续教育协会的审核员作出。");
  for (const tab of document.querySelectorAll(".tabs .button")) {
    tab.addEventListener("click", () => {
      state = /** @type {HTMLElement} */ (tab).dataset.state || "submitted";
      page = 1;
      for (const other of document.querySelectorAll(".tabs .button")) other.setAttribute("aria-pressed", String(other === tab));
      load();
    });
  }
  $("#prev").addEventListener("click", () => { page = Math.max(1, page - 1); load(); });
  $("#next").addEventListener("click", () => { page += 1; load(); });
  await load();
}
start();
