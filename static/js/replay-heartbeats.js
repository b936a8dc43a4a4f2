// @ts-check
/**
 * Replay playback evidence (docs/api.md "Replay playback"): open a playback (POST
 * /api/replays/{id}/playback: a learning client with a signed token), send heartbeats with an increasing
 * `seq` every `heartbeat_period_s` while playing and whenever the page pauses, seeks or is hidden or shown,
 * and answer the presence checks the server puts in its answers. The server measures; the page reports.
 * Protocol only: the page supplies the player's state and shows the checks.
 */
import { ApiError, api, csrfToken } from "./api.js";

/** @typedef {{position_s: number, rate: number, visible: boolean, angle: string}} PlayerState */
/** @typedef {{check_id: string, nonce: string, window_s: number}} Check */
/**
 * @typedef {{client_id: string, token: string, heartbeat_period_s: number, check_window_s: number,
 *   position_s: number, first_viewing: boolean, max_playback_rate: number}} Opened
 */

// Beats the page itself triggers (pause, seek, visibility) closer together than this are sent as one.
const MIN_GAP_MS = 400;

export class ReplayHeartbeats {
  /**
   * @param {string} recordingId
   * @param {() => PlayerState | null} state the player's state now, or null before the media is ready
   * @param {{onCheck: (check: Check) => void, onSuperseded: () => void, onLost: () => void}} on
   *   onCheck: a check to show (again until answered); onSuperseded: another page or device took over;
   *   onLost: the playback is no longer valid here (token expired, logged out): open it again to go on
   */
  constructor(recordingId, state, on) {
    this.url = `/api/replays/${encodeURIComponent(recordingId)}/playback`;
    this.state = state;
    this.on = on;
    /** @type {Opened | null} */
    this.opened = null;
    this.seq = 0;
    this.sent = 0; // accepted heartbeats (read by tests)
    this.superseded = false;
    /** @type {number | undefined} */
    this.timer = undefined;
    /** @type {number | undefined} */
    this.pending = undefined;
    this.lastSentAt = -Infinity;
  }

  /** Open a new playback (a new learning client: any other of this person stops counting). */
  async open() {
    this.stop();
    /** @type {Opened} */
    const opened = await api("POST", this.url);
    this.opened = opened;
    this.seq = 0;
    this.superseded = false;
    return opened;
  }

  get periodMs() {
    return (this.opened ? this.opened.heartbeat_period_s : 30) * 1000;
  }

  /** Heartbeats every period from now on (call when playback starts), and one now. */
  start() {
    if (this.timer === undefined) this.timer = window.setInterval(() => void this.send(false), this.periodMs);
    this.beat();
  }

  /** No more periodic heartbeats (on pause / end); the page calls `beat()` for the last one. */
  stop() {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A heartbeat now (pause, seek, visibility change), or a moment later if one was just sent. */
  beat() {
    const wait = this.lastSentAt + MIN_GAP_MS - performance.now();
    if (wait <= 0) {
      void this.send(false);
    } else if (this.pending === undefined) {
      this.pending = window.setTimeout(() => {
        this.pending = undefined;
        void this.send(false);
      }, wait);
    }
  }

  /** The page is going away: a last heartbeat that outlives it. */
  flush() {
    if (this.pending !== undefined) window.clearTimeout(this.pending);
    this.pending = undefined;
    void this.send(true);
  }

  /** @param {boolean} keepalive */
  async send(keepalive) {
    const opened = this.opened;
    const state = this.state();
    if (!opened || !state || this.superseded) return;
    this.lastSentAt = performance.now();
    const body = { token: opened.token, seq: this.seq++, ...state };
    try {
      const res = await this.post(`/api/playback/${opened.client_id}/heartbeats`, body, keepalive);
      if (opened !== this.opened) return; // reopened meanwhile: this answer is about the old client
      if (res.ok) {
        this.sent += 1;
        const answer = await res.json();
        if (answer.check) this.on.onCheck(answer.check);
        return;
      }
      const err = await this.error(res);
      if (err.code === "superseded") {
        this.superseded = true;
        this.stop();
        this.on.onSuperseded();
      } else if (res.status === 401 || res.status === 403) {
        this.opened = null;
        this.stop();
        this.on.onLost();
      } else if (res.status !== 429) {
        console.warn(err);
      }
    } catch (err) {
      console.warn("heartbeat failed", err); // offline for a moment: the next one carries on
    }
  }

  /**
   * Answer a check (a click on the page's dialog). Resolves "answered", "expired" or "failed".
   * @param {Check} check
   * @returns {Promise<"answered" | "expired" | "failed">}
   */
  async answer(check) {
    const opened = this.opened;
    if (!opened) return "failed";
    const url = `/api/playback/${opened.client_id}/checks/${encodeURIComponent(check.check_id)}`;
    try {
      const res = await this.post(url, { token: opened.token, nonce: check.nonce }, false);
      if (res.ok) return "answered";
      const err = await this.error(res);
      if (err.code === "check_expired") return "expired";
      if (err.code === "check_answered") return "answered";
      if (err.code === "superseded") {
        this.superseded = true;
        this.stop();
        this.on.onSuperseded();
      }
      return "failed";
    } catch {
      return "failed";
    }
  }

  /** @param {string} url @param {unknown} body @param {boolean} keepalive */
  post(url, body, keepalive) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body),
      credentials: "same-origin",
      keepalive,
    });
  }

  /** @param {Response} res */
  async error(res) {
    const err = (await res.json().catch(() => null))?.error || {};
    return new ApiError(res.status, err.code || "error", err.message || res.statusText, err.field || null, err.details);
  }
}
