// @ts-check
/** Replay page: one lecture timeline over the recording's angles (camera, screen), played with hls.js. The
 * scrubber and the time shown are lecture time whichever angle plays; where the chosen angle has no picture
 * (a screen share that started at 01:12) another angle plays, the page says so, and it switches back when
 * the chosen angle has a picture. Opens at 0:00 on the camera unless resuming. Opens a playback and sends its
 * heartbeats (replay-heartbeats.js), says what is being counted, and shows the server's presence checks. */
import { api, ApiError } from "../api.js";
import { $, duration, h, say, sayError, whoami } from "../ui.js";
import { AngleTimeline } from "../playback.js";
import { ReplayHeartbeats } from "../replay-heartbeats.js";

/** @typedef {{name: string, hls_url: string, mp4_url: string | null, start_s: number, duration_s: number}} Angle */

/** hls.js, loaded by a classic script tag from /static/vendor/hls.min.js (absent: native HLS only). */
const Hls = /** @type {typeof import("hls.js").default | undefined} */ (/** @type {any} */ (window).Hls);

const recordingId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const video = /** @type {HTMLVideoElement} */ ($("#video"));
const scrubber = /** @type {HTMLInputElement} */ ($("#scrubber"));
const playBtn = /** @type {HTMLButtonElement} */ ($("#play"));
const muteBtn = /** @type {HTMLButtonElement} */ ($("#mute"));
const rateSelect = /** @type {HTMLSelectElement} */ ($("#rate"));
const timeText = $("#time");
const note = $("#angle-note");
const counting = $("#counting");
const checkDialog = /** @type {HTMLDialogElement} */ ($("#check"));
/** @type {Record<string, string>} */
const ANGLE_LABEL = { camera: "讲师画面", screen: "屏幕共享" };
/** @param {string} name */
const label = (name) => ANGLE_LABEL[name] || name;

/** @type {any} GET /api/replays/{id} */
let replay = null;
/** @type {AngleTimeline | null} */
let timeline = null;
/** @type {Angle | null} the angle whose media is in the video element */
let shown = null;
/** The angle the learner chose (camera unless resuming on another, or a button was pressed). */
let preferred = "camera";
/** @type {import("hls.js").default | null} */
let hls = null;
let loads = 0; // which load() the video element is on: older loads' callbacks do nothing
let ready = false; // the shown angle's media is loaded and at its position
let pendingAt = 0; // the lecture time being loaded while not ready
let dragging = false; // the learner is moving the scrubber
let finished = false; // the lecture played to its end
/** @type {import("../replay-heartbeats.js").Check | null} the presence check on screen */
let check = null;
let resumeAfterCheck = false; // the check paused playback: play on once it is answered
// Playback that stalls this close to the end of the lecture has reached it (see "waiting" below).
const END_SLACK_S = 0.5;
// The media cookie lasts an hour (docs/security.md): renewed while the page is open.
const MEDIA_RENEW_MS = 30 * 60 * 1000;

/** @param {number} s a position on the lecture, for the clock-like time line (a hair under a second,
 * such as a screen share's start at 3.9996 s, reads as that second) */
function clock(s) {
  const t = Math.max(0, Math.floor(s + 0.01));
  const hh = Math.floor(t / 3600);
  const mm = String(Math.floor((t % 3600) / 60)).padStart(2, "0");
  const ss = String(t % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** A moment the page announces (an angle's start or end), to the second it has happened by: a share that
 * starts at 3.9996 s is "00:04", not "00:03". @param {number} s */
const mark = (s) => clock(Math.ceil(s - 0.05));

/** @param {number} v @param {number} lo @param {number} hi */
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Where playback is on the lecture (each angle's media starts at its start_s). */
function position() {
  if (!shown || !replay) return 0;
  if (!ready) return pendingAt;
  return clamp(video.currentTime + shown.start_s, 0, replay.duration_s);
}

const heartbeats = new ReplayHeartbeats(
  recordingId,
  () =>
    ready && shown
      ? {
          position_s: Math.round(position() * 10) / 10,
          rate: clamp(video.playbackRate || 1, 0.25, 4),
          visible: document.visibilityState === "visible",
          angle: shown.name,
        }
      : null,
  { onCheck: showCheck, onSuperseded: superseded, onLost: () => void reopen() },
);

/** Say plainly what is being counted: 正在计时 only while the media plays on a page that is seen. */
function showCounting() {
  let text = "";
  let state = "";
  if (heartbeats.superseded) [text, state] = ["已在其他页面继续学习，本页已停止计时", "superseded"];
  else if (!heartbeats.opened) [text, state] = ["未计时：请点击播放继续", "paused"];
  else if (document.visibilityState !== "visible") [text, state] = ["已暂停：页面不可见", "hidden"];
  else if (check) [text, state] = ["已暂停：请确认您仍在学习", "check"];
  else if (video.paused || finished) [text, state] = ["已暂停", "paused"];
  else [text, state] = ["正在计时", "counting"];
  counting.textContent = text;
  counting.dataset.state = state;
  counting.hidden = !replay;
}

/** Show the server's presence check: playback waits for the learner's click. @param {import("../replay-heartbeats.js").Check} next */
function showCheck(next) {
  if (check && check.check_id === next.check_id) return;
  check = next;
  resumeAfterCheck = resumeAfterCheck || !video.paused;
  if (!video.paused) video.pause();
  $("#check-text").textContent = `请在 ${Math.max(1, Math.round(next.window_s))} 秒内点击下方按钮，确认您仍在学习。`;
  if (!checkDialog.open) checkDialog.showModal();
  showCounting();
}

async function answerCheck() {
  const shownCheck = check;
  if (!shownCheck) return;
  const button = /** @type {HTMLButtonElement} */ ($("#check-answer"));
  button.disabled = true;
  const result = await heartbeats.answer(shownCheck);
  button.disabled = false;
  check = null;
  checkDialog.close();
  if (result === "expired") say("确认已超时：本次确认未计入，请继续学习。", "error");
  else if (result === "failed" && !heartbeats.superseded) say("确认未能提交，请检查网络后继续学习。", "error");
  else say("");
  if (resumeAfterCheck && !heartbeats.superseded) video.play().catch(() => say("请点击播放按钮继续观看。"));
  resumeAfterCheck = false;
  showCounting();
}

/** Another page or device of this learner took over: stop here, say so; playing again takes it back. */
function superseded() {
  if (checkDialog.open) checkDialog.close();
  check = null;
  resumeAfterCheck = false;
  if (!video.paused) video.pause();
  say("已在其他页面继续学习：本页已停止计时。点击播放可在本页继续。");
  showCounting();
}

/** The playback is no longer valid (its token expired after a long pause, or the login changed): open a new
 * one and go on counting, or say why not. */
async function reopen() {
  showCounting();
  try {
    await heartbeats.open();
    if (!video.paused) heartbeats.start();
  } catch (err) {
    if (!video.paused) video.pause();
    sayError(err);
  }
  showCounting();
}

/** Play, opening a new playback first when this page's was superseded or lost. */
async function play() {
  if (heartbeats.superseded || !heartbeats.opened) {
    try {
      await heartbeats.open();
      say("");
    } catch (err) {
      sayError(err);
      return;
    }
  }
  video.play().catch(() => say("请点击播放按钮继续观看。"));
}

/** @param {number} t lecture time */
function showTime(t) {
  timeText.textContent = `${clock(t)} / ${clock(replay ? replay.duration_s : 0)}`;
  if (!dragging) scrubber.value = String(t);
}

/** Say, over the video, why the chosen angle is not the one playing (nothing when it is). @param {number} t */
function showNote(t) {
  const text = timeline ? timeline.gapNote(preferred, t, label, mark) : "";
  if (!text || !timeline) {
    note.hidden = true;
    note.dataset.text = "";
    return;
  }
  // Rebuilt only when the words change: its button must survive the 4 timeupdates a second.
  if (note.dataset.text !== text) {
    note.dataset.text = text;
    const chosen = timeline.byName(preferred);
    const jump =
      chosen && t < timeline.startOf(chosen) && !timeline.broken.has(chosen.name)
        ? [h("button", { type: "button", "data-jump": String(chosen.start_s) }, [`跳到 ${mark(chosen.start_s)}`])]
        : [];
    for (const b of jump) b.addEventListener("click", () => seek(Number(b.dataset.jump), true));
    note.replaceChildren(text, ...jump);
  }
  note.hidden = false;
}

function showPressed() {
  for (const b of document.querySelectorAll("#angles button")) {
    b.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (b).dataset.angle === preferred));
  }
}

/**
 * Put an angle's media in the video element at lecture time `at`, playing if `play`.
 * @param {Angle} next
 * @param {number} at
 * @param {boolean} play
 */
function load(next, at, play) {
  const mine = ++loads;
  ready = false;
  pendingAt = at;
  shown = next;
  $("#player").dataset.angle = next.name; // which angle is on screen (read by tests, and by CSS if needed)
  const seekTo = clamp(at - next.start_s, 0, Math.max(0, next.duration_s - 0.5));
  video.addEventListener(
    "loadedmetadata",
    () => {
      if (mine !== loads) return;
      video.currentTime = seekTo;
      video.playbackRate = Number(rateSelect.value) || 1;
      ready = true;
      if (play) video.play().catch(() => say("请点击播放按钮继续观看。"));
    },
    { once: true },
  );
  if (hls) hls.destroy();
  hls = null;
  if (Hls && Hls.isSupported()) {
    const player = new Hls({ startPosition: seekTo });
    hls = player;
    player.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal && mine === loads) failed(next, at);
    });
    player.loadSource(next.hls_url);
    player.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = next.hls_url; // Safari on iPhone plays HLS itself
  } else {
    say("当前浏览器无法播放回放，请更换浏览器后重试。", "error");
  }
  showTime(at);
  showNote(at);
}

/** An angle's media failed: play another where there is one. @param {Angle} angle @param {number} at */
function failed(angle, at) {
  if (!timeline) return;
  timeline.broken.add(angle.name);
  const other = /** @type {Angle | null} */ (timeline.pick(preferred, at) || timeline.nextStart(at));
  if (other) load(other, Math.max(at, other.start_s), !video.paused);
  else say("视频加载失败，请刷新页面重试。", "error");
}

/**
 * Go to lecture time `t` on the angle that has a picture there.
 * @param {number} t
 * @param {boolean} play
 */
function seek(t, play) {
  if (!timeline || !shown || !replay) return;
  let at = clamp(t, 0, replay.duration_s);
  finished = false;
  let want = /** @type {Angle | null} */ (timeline.pick(preferred, at));
  if (!want) {
    const next = /** @type {Angle | null} */ (timeline.nextStart(at));
    if (next) at = next.start_s;
    want = next || shown; // past every angle's end: the shown one plays out
  }
  if (want.name === shown.name && ready) {
    video.currentTime = clamp(at - shown.start_s, 0, shown.duration_s);
    showTime(at);
    showNote(at);
    if (play && video.paused) video.play().catch(() => say("请点击播放按钮继续观看。"));
  } else {
    load(want, at, play);
  }
}

/** The lecture time moved on: follow it with the right angle. */
function follow() {
  if (!ready || !timeline || !shown || finished) return;
  const t = position();
  showTime(t);
  showNote(t);
  const want = /** @type {Angle | null} */ (timeline.pick(preferred, t));
  if (want && want.name !== shown.name) {
    load(want, t, !video.paused);
  } else if (!want && !timeline.covers(shown, t)) {
    const next = /** @type {Angle | null} */ (timeline.nextStart(t));
    if (next) load(next, next.start_s, !video.paused); // no picture anywhere until then
  }
}

/** @param {Angle[]} angles */
function renderAngles(angles) {
  const buttons = angles.map((a) => {
    const b = h("button", { type: "button", class: "button", "data-angle": a.name, "aria-pressed": "false" }, [label(a.name)]);
    b.addEventListener("click", () => {
      if (!timeline || preferred === a.name) return;
      preferred = a.name;
      showPressed();
      const t = position();
      // Shown now if it has a picture here; otherwise the note says when it starts and offers a jump.
      if (timeline.covers(a, t) && shown && shown.name !== a.name) load(a, t, !video.paused);
      else showNote(t);
    });
    return b;
  });
  $("#angles").replaceChildren(...(angles.length > 1 ? buttons : []));
  showPressed();
  $("#downloads").replaceChildren(
    ...angles.filter((a) => a.mp4_url).map((a) => h("a", { href: String(a.mp4_url), download: "" }, [`下载${label(a.name)}（MP4）`])),
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
  $("#meta").replaceChildren(h("span", { id: "duration" }, [`时长 ${duration(replay.duration_s)}`]));
  /** @type {Angle[]} */
  const angles = (replay.angles || []).filter((/** @type {Angle} */ a) => a.hls_url);
  if (!angles.length) {
    say("该回放暂无可播放的画面。", "error");
    return;
  }
  timeline = new AngleTimeline(angles, replay.duration_s);
  scrubber.max = String(replay.duration_s);
  let opened;
  try {
    opened = await heartbeats.open();
  } catch (err) {
    sayError(err);
    return;
  }
  limitRates(opened.max_playback_rate);
  window.setInterval(() => {
    api("POST", `/api/sessions/${replay.session_id}/hls-access`).catch(() => {});
  }, MEDIA_RENEW_MS);
  // Resume where the learner left off (unless that was the very end, so a finished replay starts over), on
  // the angle they watched if it has a picture there; everyone else starts at 0:00 on the camera.
  // "The very end" is the last 3 s, or the last 5 % of a replay shorter than a minute.
  const saved = { position_s: opened.position_s, angle: replay.progress ? replay.progress.angle : "camera" };
  const endMarginS = Math.min(3, replay.duration_s * 0.05);
  const resuming = Boolean(saved) && saved.position_s >= 1 && saved.position_s < replay.duration_s - endMarginS;
  const at = resuming ? saved.position_s : 0;
  const savedAngle = resuming ? timeline.byName(saved.angle) : undefined;
  const camera = angles.find((a) => a.name === "camera") || angles[0];
  preferred = savedAngle && timeline.covers(savedAngle, at) ? savedAngle.name : camera.name;
  renderAngles(angles);
  $("#player-box").hidden = false;
  say(resuming ? `已为您从上次观看的位置（${clock(at)}）继续。` : "");
  const first = /** @type {Angle} */ (timeline.pick(preferred, at) || timeline.nextStart(at) || camera);
  load(first, Math.max(at, first.start_s), false);
  showCounting();
}

/** Offer only the speeds that are counted (the credit policy's maximum rate). @param {number} max */
function limitRates(max) {
  for (const option of [...rateSelect.options]) {
    if (Number(option.value) > max + 1e-9) option.remove();
  }
  if (Number(rateSelect.value) > max) rateSelect.value = "1";
  rateSelect.hidden = rateSelect.options.length < 2;
  rateSelect.dataset.max = String(max);
}

video.addEventListener("timeupdate", follow);
video.addEventListener("play", () => {
  playBtn.textContent = "暂停";
  heartbeats.start();
  showCounting();
});
video.addEventListener("pause", () => {
  playBtn.textContent = finished ? "重新播放" : "播放";
  heartbeats.stop();
  heartbeats.beat();
  showCounting();
});
video.addEventListener("seeked", () => heartbeats.beat());
video.addEventListener("ratechange", () => {
  // A player or an extension may change the rate: never faster than what is counted.
  const max = Number(rateSelect.dataset.max || "4");
  if (video.playbackRate > max) video.playbackRate = max;
});
/** The shown angle's media ran out: play the angle the lecture goes on with, else the lecture is over. */
function mediaEnded() {
  if (!ready || !timeline || !shown) return;
  const t = position();
  const want = /** @type {Angle | null} */ (timeline.pick(preferred, t) || timeline.nextStart(t));
  if (want && want.name !== shown.name) {
    load(want, Math.max(t, want.start_s), true); // this angle ran out before the lecture did
    return;
  }
  finished = true;
  playBtn.textContent = "重新播放";
  showTime(replay.duration_s);
  heartbeats.stop();
  heartbeats.beat();
  showCounting();
}

video.addEventListener("ended", mediaEnded);
// Media Source playback can stall a few hundredths of a second short of the end (the last audio and video
// samples end apart) without ever firing "ended": the page would say 正在计时 over a frozen last frame.
// Waiting for data that close to the end of the lecture is its end.
video.addEventListener("waiting", () => {
  if (!ready || !replay || finished || replay.duration_s - position() > END_SLACK_S) return;
  mediaEnded();
  if (finished && !video.paused) video.pause();
});
video.addEventListener("click", () => playBtn.click());
playBtn.addEventListener("click", () => {
  if (!shown) return;
  if (heartbeats.superseded || !heartbeats.opened) void play().then(() => finished && seek(0, true));
  else if (finished) seek(0, true);
  else if (video.paused) void play();
  else video.pause();
});
scrubber.addEventListener("input", () => {
  dragging = true;
  showTime(Number(scrubber.value));
});
scrubber.addEventListener("change", () => {
  dragging = false;
  seek(Number(scrubber.value), !video.paused);
});
rateSelect.addEventListener("change", () => {
  video.playbackRate = Number(rateSelect.value) || 1;
});
muteBtn.addEventListener("click", () => {
  video.muted = !video.muted;
});
video.addEventListener("volumechange", () => {
  muteBtn.textContent = video.muted ? "已静音" : "静音";
  muteBtn.setAttribute("aria-pressed", String(video.muted));
});
$("#fullscreen").addEventListener("click", () => {
  const box = $("#player");
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else if (box.requestFullscreen) box.requestFullscreen().catch(() => {});
  else /** @type {any} */ (video).webkitEnterFullscreen?.(); // iPhone: only the video goes full screen
});
document.addEventListener("visibilitychange", () => {
  heartbeats.beat();
  showCounting();
});
window.addEventListener("pagehide", () => heartbeats.flush());
$("#check-answer").addEventListener("click", () => void answerCheck());
// Escape would close the dialog without an answer: the check stays until it is answered or expires.
checkDialog.addEventListener("cancel", (event) => event.preventDefault());

main();
