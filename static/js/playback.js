// @ts-check
/**
 * Replay progress reports (PUT /api/replays/{id}/progress): every `everyS` seconds while playing and on
 * pause, visibility change and page hide. The server accepts one report per person and recording per
 * `minIntervalS`; reports that come sooner are coalesced into one sent when the interval has passed.
 * Protocol only: the page supplies the state, this module decides when to send it.
 */
import { ApiError, csrfToken } from "./api.js";

/** @typedef {{position_s: number, rate: number, visible: boolean, angle: string}} Progress */

export class ProgressReporter {
  /**
   * @param {string} recordingId
   * @param {() => Progress | null} state the current state, or null when there is nothing to report
   * @param {{everyS?: number, minIntervalS?: number}} [options]
   */
  constructor(recordingId, state, { everyS = 10, minIntervalS = 5 } = {}) {
    this.url = `/api/replays/${encodeURIComponent(recordingId)}/progress`;
    this.state = state;
    this.everyS = everyS;
    // A little slack over the server's interval: its clock starts when it stored the last report.
    this.minIntervalMs = minIntervalS * 1000 + 250;
    this.lastSentAt = -Infinity;
    /** @type {number | undefined} */
    this.pending = undefined;
    /** @type {number | undefined} */
    this.timer = undefined;
    this.sent = 0;
  }

  /** Start the periodic reports (call when playback starts). */
  start() {
    if (this.timer === undefined) this.timer = window.setInterval(() => this.report(), this.everyS * 1000);
  }

  /** Stop the periodic reports (on pause / end); a final report is sent with `report()`. */
  stop() {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Report now, or as soon as the server will accept it. */
  report() {
    const wait = this.lastSentAt + this.minIntervalMs - performance.now();
    if (wait > 0) {
      if (this.pending === undefined) {
        this.pending = window.setTimeout(() => {
          this.pending = undefined;
          this.report();
        }, wait);
      }
      return;
    }
    void this.send(false);
  }

  /** The page is going away: send what we have even if it may be refused, with keepalive. */
  flush() {
    if (this.pending !== undefined) window.clearTimeout(this.pending);
    this.pending = undefined;
    void this.send(true);
  }

  /** @param {boolean} keepalive */
  async send(keepalive) {
    const body = this.state();
    if (!body) return;
    this.lastSentAt = performance.now();
    try {
      const res = await fetch(this.url, {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(body),
        credentials: "same-origin",
        keepalive,
      });
      if (res.ok) this.sent += 1;
      else if (res.status !== 429) {
        const err = (await res.json().catch(() => null))?.error || {};
        console.warn(new ApiError(res.status, err.code || "error", err.message || res.statusText, err.field || null));
      }
    } catch (err) {
      console.warn("progress report failed", err); // offline for a moment: the next report carries on
    }
  }
}

/** @typedef {{name: string, start_s: number, duration_s: number}} AngleSpan */

/**
 * One lecture timeline over a recording's angles. Each angle covers [start_s, start_s + duration_s) of the
 * lecture (a screen share started at 01:12 covers nothing before it); the page plays lecture time and
 * shows, at each moment, the angle the learner chose when it has a picture there, else another that has.
 * Pure: no DOM, so the rules read (and are checked) apart from the page.
 */
export class AngleTimeline {
  /**
   * @param {AngleSpan[]} angles in the recording's order (camera first)
   * @param {number} durationS the whole lecture
   */
  constructor(angles, durationS) {
    this.angles = angles;
    this.durationS = durationS;
    /** Angles that failed to load: never chosen again on this page. */
    this.broken = new Set(/** @type {string[]} */ ([]));
  }

  /** @param {string} name @returns {AngleSpan | undefined} */
  byName(name) {
    return this.angles.find((a) => a.name === name);
  }

  /**
   * Where the angle's picture begins, for choosing angles: an angle whose first frame came within the
   * lecture's first second (the camera at 0.05 s, after the microphone) counts as there from 0, so that
   * no page ever says "讲师画面从 00:00 开始".
   * @param {AngleSpan} angle
   */
  startOf(angle) {
    return angle.start_s < 1 ? 0 : angle.start_s;
  }

  /**
   * Whether the angle has a picture at lecture time `t`. The last quarter second of an angle counts as
   * past it, so that the switch to the next angle happens before its media runs out.
   * @param {AngleSpan} angle @param {number} t
   */
  covers(angle, t) {
    return !this.broken.has(angle.name) && t >= this.startOf(angle) && t < angle.start_s + angle.duration_s - 0.25;
  }

  /**
   * The angle to show at `t`: the preferred one if it covers `t`, else the first (camera first) that does,
   * else null (no picture anywhere: see `nextStart`).
   * @param {string} preferred @param {number} t
   * @returns {AngleSpan | null}
   */
  pick(preferred, t) {
    const chosen = this.byName(preferred);
    if (chosen && this.covers(chosen, t)) return chosen;
    return this.angles.find((a) => this.covers(a, t)) || null;
  }

  /**
   * Where the next angle starts after `t` (a gap with no picture at all skips to it), or null.
   * @param {number} t
   * @returns {AngleSpan | null}
   */
  nextStart(t) {
    const later = this.angles.filter((a) => !this.broken.has(a.name) && this.startOf(a) > t).sort((a, b) => a.start_s - b.start_s);
    return later[0] || null;
  }

  /**
   * Why the preferred angle is not shown at `t`, in words for the learner ("" when it is shown).
   * @param {string} preferred @param {number} t @param {(name: string) => string} label
   * @param {(s: number) => string} clock
   */
  gapNote(preferred, t, label, clock) {
    const chosen = this.byName(preferred);
    if (!chosen || this.covers(chosen, t)) return "";
    const shown = this.pick(preferred, t);
    const instead = shown ? `现在显示${label(shown.name)}。` : "";
    if (this.broken.has(chosen.name)) return `${label(chosen.name)}无法加载，${instead}`;
    if (t < this.startOf(chosen)) return `${label(chosen.name)}从 ${clock(chosen.start_s)} 开始，届时自动切换；${instead}`;
    return `${label(chosen.name)}在 ${clock(chosen.start_s + chosen.duration_s)} 结束，${instead}`;
  }
}
