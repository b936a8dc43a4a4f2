// @ts-check
/** What the courseware pages share: the review and processing states in Chinese, a version's line of
 * facts, its reviews, and a player for a version's replay (hls.js where MSE exists, native HLS else). */
import { api } from "./api.js";
import { duration, h, when } from "./ui.js";

/** @type {Record<string, string>} */
export const REVIEW_STATE = {
  draft: "未提交",
  submitted: "审核中",
  approved: "已通过（已共享）",
  rejected: "已退回",
  revoked: "已撤销",
  superseded: "已被新版本替代",
};
/** @type {Record<string, string>} */
export const PROCESSING = { uploading: "上传中", processing: "正在检查和转码", ready: "已就绪", failed: "检查未通过" };
/** @type {Record<string, string>} */
export const DECISION = { approved: "通过", rejected: "退回", revoked: "撤销" };

/**
 * A badge for a version's review state (`data-state` carries the API's value for tests and styles).
 * @param {string} state
 */
export function stateBadge(state) {
  return h("span", { class: `badge review-${state}`, "data-state": state }, [REVIEW_STATE[state] || state]);
}

/**
 * The facts of a version in one line: number, kind, length, processing, when it was submitted.
 * @param {any} v
 * @returns {HTMLElement}
 */
export function versionMeta(v) {
  const parts = [h("span", {}, [`第 ${v.version} 版`]), h("span", {}, [v.media_kind === "pdf" ? "PDF" : "视频"])];
  if (v.duration_s) parts.push(h("span", {}, [`时长 ${duration(v.duration_s)}`]));
  if (v.has_slides && v.media_kind !== "pdf") parts.push(h("span", {}, ["含讲义（PDF）"]));
  parts.push(h("span", { "data-processing": v.processing }, [PROCESSING[v.processing] || v.processing]));
  if (v.submitted_at) parts.push(h("span", {}, [`提交于 ${when(v.submitted_at)}`]));
  return h("div", { class: "meta" }, parts);
}

/**
 * The reviewers' decisions on a version, oldest first, with their comments.
 * @param {any[]} reviews
 * @returns {HTMLElement[]}
 */
export function reviewLines(reviews) {
  return (reviews || []).map((/** @type {any} */ r) =>
    h("p", { class: "review-line" }, [
      `${when(r.decided_at)} ${r.reviewer_name || "审核员"}：${DECISION[r.decision] || r.decision}`,
      ...(r.comments ? [`——${r.comments}`] : []),
    ]),
  );
}

/** hls.js, loaded by a classic script tag from /static/vendor/hls.min.js (absent: native HLS only). */
const Hls = /** @type {typeof import("hls.js").default | undefined} */ (/** @type {any} */ (window).Hls);
/** @type {import("hls.js").default | null} */
let current = null;

/**
 * Play a version's replay in `video`: GET /api/replays/{id} sets the media cookie for its session and
 * names the playlist; nothing is counted as learning (no playback is opened).
 * @param {HTMLVideoElement} video
 * @param {string} recordingId
 * @returns {Promise<any>} the replay
 */
export async function playRendition(video, recordingId) {
  const replay = await api("GET", `/api/replays/${encodeURIComponent(recordingId)}`);
  const angle = (replay.angles || []).find((/** @type {any} */ a) => a.hls_url);
  if (!angle) throw new Error("no playable angle");
  if (current) current.destroy();
  current = null;
  if (Hls && Hls.isSupported()) {
    current = new Hls();
    current.loadSource(angle.hls_url);
    current.attachMedia(video);
  } else {
    video.src = angle.hls_url;
  }
  return replay;
}

/**
 * A link to a version's slides (a signed URL good for ten minutes), to open in a new tab: fetched when
 * asked, so that a phone's browser opens it from the person's own tap on the link.
 * @param {number} versionId
 * @returns {Promise<HTMLElement>}
 */
export async function slidesLink(versionId) {
  const res = await api("GET", `/api/courseware/versions/${versionId}/slides`);
  return h("a", { class: "button", href: res.url, target: "_blank", rel: "noopener" }, ["打开讲义（PDF）"]);
}
