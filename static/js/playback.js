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
