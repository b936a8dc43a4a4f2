// @ts-check
/** Replay page: plays a recorded session with hls.js (camera ⇄ screen, keeping the position), resumes
 * where the learner left off and reports progress (position, rate, visibility, angle) to the API. */
import { api, ApiError } from "../api.js";
import { $, h, say, sayError, whoami } from "../ui.js";
import { ProgressReporter } from "../playback.js";

/** @typedef {{name: string, hls_url: string, mp4_url: string | null, start_s: number, duration_s: number}} Angle */

/** hls.js, loaded by a classic script tag from /static/vendor/hls.min.js (absent: native HLS only). */
const Hls = /** @type {typeof import("hls.js").default | undefined} */ (/** @type {any} */ (window).Hls);

const recordingId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const video = /** @type {HTMLVideoElement} */ ($("#video"));
/** @type {Record<string, string>} */
const ANGLE_LABEL = { camera: "讲师画面", screen: "屏幕共享" };

/** @type {any} */
let replay = null;
/** @type {Angle | null} */
let angle = null;
/** @type {import("hls.js").default | null} */
let hls = null;
let ready = false;

/** @param {number} s */
function clock(s) {
  const t = Math.max(0, Math.floor(s));
  const hh = Math.floor(t / 3600);
  const mm = String(Math.floor((t % 3600) / 60)).padStart(2, "0");
  const ss = String(t % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** @param {number} v @param {number} lo @param {number} hi */
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Where playback is on the recording's common timeline (each angle's media starts at its start_s). */
function position() {
  return angle ? clamp(video.currentTime + angle.start_s, 0, replay.duration_s) : 0;
}

const reporter = new ProgressReporter(
  recordingId,
  () =>
    ready && angle
      ? {
          position_s: Math.round(position() * 10) / 10,
          rate: clamp(video.playbackRate || 1, 0.25, 4),
          visible: document.visibilityState === "visible",
          angle: angle.name,
        }
      : null,
);

/**
 * Load an angle and continue at `at` (recording time), playing if `play`.
 * @param {Angle} next
 * @param {number} at
 * @param {boolean} play
 */
function load(next, at, play) {
  ready = false;
  angle = next;
  const rate = video.playbackRate || 1;
  for (const b of document.querySelectorAll("#angles button")) {
    b.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (b).dataset.angle === next.name));
  }
  if (at < next.start_s) say(`${ANGLE_LABEL[next.name] || next.name}从 ${clock(next.start_s)} 开始。`);
  const seekTo = clamp(at - next.start_s, 0, Math.max(0, next.duration_s - 0.5));
  video.addEventListener(
    "loadedmetadata",
    () => {
      video.currentTime = seekTo;
      video.playbackRate = rate;
      ready = true;
      if (play) video.play().catch(() => say("请点击播放按钮继续观看。"));
    },
    { once: true },
  );
  if (hls) hls.destroy();
  hls = null;
  if (Hls && Hls.isSupported()) {
    hls = new Hls({ startPosition: seekTo });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) say("视频加载失败，请刷新页面重试。", "error");
    });
    hls.loadSource(next.hls_url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = next.hls_url; // Safari on iPhone plays HLS itself
  } else {
    say("当前浏览器无法播放回放，请更换浏览器后重试。", "error");
  }
}

/** @param {Angle[]} angles */
function renderAngles(angles) {
  const buttons = angles.map((a) => {
    const b = h("button", { type: "button", class: "button", "data-angle": a.name, "aria-pressed": "false" }, [
      ANGLE_LABEL[a.name] || a.name,
    ]);
    b.addEventListener("click", () => {
      if (angle && a.name !== angle.name) load(a, position(), !video.paused);
    });
    return b;
  });
  $("#angles").replaceChildren(...(angles.length > 1 ? buttons : []));
  $("#downloads").replaceChildren(
    ...angles
      .filter((a) => a.mp4_url)
      .map((a) => h("a", { href: String(a.mp4_url), download: "" }, [`下载${ANGLE_LABEL[a.name] || a.name}（MP4）`])),
  );
}

async function main() {
  await whoami().catch(() => null);
  say("正在加载…");
  try {
    replay = await api("GET", `/api/replays/${encodeURIComponent(recordingId)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      say("请先登录后观看回放。", "error");
      const next = encodeURIComponent(location.pathname);
      $("#message").append(" ", h("a", { href: `/login?next=${next}` }, ["去登录"]));
    } else if (err instanceof ApiError && err.status === 403) {
      say("您没有观看此回放的权限：请先报名该课程。", "error");
    } else if (err instanceof ApiError && err.status === 404) {
      say("回放不存在或尚未生成。", "error");
    } else {
      sayError(err);
    }
    return;
  }
  document.title = `${replay.session_title} · 课程回放 · Lectern 讲堂`;
  $("#title").textContent = `${replay.course_title} · ${replay.session_title}`;
  $("#back").setAttribute("href", `/courses/${replay.course_id}`);
  $("#meta").replaceChildren(h("span", {}, [`时长 ${clock(replay.duration_s)}`]));
  /** @type {Angle[]} */
  const angles = (replay.angles || []).filter((/** @type {Angle} */ a) => a.hls_url);
  if (!angles.length) {
    say("该回放暂无可播放的画面。", "error");
    return;
  }
  reporter.everyS = replay.report_every_s || 10;
  reporter.minIntervalMs = (replay.report_min_interval_s || 5) * 1000 + 250;
  renderAngles(angles);
  $("#player-box").hidden = false;
  const saved = replay.progress;
  const first = angles.find((a) => saved && a.name === saved.angle) || angles[0];
  // Resume where the learner left off, unless that was the very end.
  const at = saved && saved.position_s < replay.duration_s - 3 ? saved.position_s : 0;
  say(at > 0 ? `已为您从上次观看的位置（${clock(at)}）继续。` : "");
  load(first, at, false);
}

video.addEventListener("play", () => reporter.start());
video.addEventListener("pause", () => {
  reporter.stop();
  reporter.report();
});
video.addEventListener("ended", () => reporter.stop());
document.addEventListener("visibilitychange", () => reporter.report());
window.addEventListener("pagehide", () => reporter.flush());

main();
