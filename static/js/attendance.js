// @ts-check
/**
 * What the live watch page tells the server about attendance, and shows the learner (docs/channel.md,
 * "Attention"; docs/events.md): a numbered heartbeat every period and each visibility change on the room channel
 * (the server measures; the page only reports), the same to the overflow-HLS heartbeat endpoint while the
 * page plays the live HLS, and a plain indicator: 正在计时 while the page is visible and the lecture is
 * live, 已暂停：页面不可见 while it is hidden, nothing once the session ended.
 */
import { api } from "./api.js";

/**
 * @typedef {{ heartbeat(seq: number, visible: boolean): unknown, visibility(visible: boolean): unknown }} AttentionChannel
 * @typedef {{ position_s: number, rate: number, media_sequence: number }} HlsPosition
 */

export class AttendanceReporter {
  /**
   * @param {AttentionChannel} channel
   * @param {number} sessionId
   * @param {HTMLElement} indicator
   */
  constructor(channel, sessionId, indicator) {
    this.channel = channel;
    this.sessionId = sessionId;
    this.indicator = indicator;
    this.periodMs = 30_000;
    /** @type {number | undefined} */
    this.timer = undefined;
    this.started = false;
    this.stopped = false;
    this.receiving = false;
    /** @type {(() => HlsPosition) | null} reads the HLS player's position while it plays */
    this.hls = null;
    this.hlsSeq = 0;
    this.liveSeq = 0; // room-channel heartbeats: one counter for the page, so it increases on every socket
    this.clientId = crypto.randomUUID();
    this.onVisibility = () => this.visibilityChanged();
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  get visible() {
    return document.visibilityState === "visible";
  }

  /**
   * The room channel (re)opened and told the period: report the page's visibility now (a new
   * connection starts unmeasured), then beat every period.
   * @param {number} periodS
   */
  start(periodS) {
    if (this.stopped) return;
    this.started = true;
    this.periodMs = Math.max(0.5, periodS) * 1000;
    window.clearInterval(this.timer);
    this.channel.visibility(this.visible);
    this.postHls();
    this.timer = window.setInterval(() => this.beat(), this.periodMs);
    this.render();
  }

  beat() {
    this.liveSeq += 1;
    this.channel.heartbeat(this.liveSeq, this.visible);
    this.postHls();
  }

  visibilityChanged() {
    if (this.stopped || !this.started) return;
    this.channel.visibility(this.visible);
    this.postHls();
    this.render();
  }

  /** @param {boolean} receiving whether the lecture is live (media is coming) */
  setReceiving(receiving) {
    this.receiving = receiving;
    this.render();
  }

  /** The page plays the live HLS (an overflow seat): its heartbeats go to the HLS endpoint too.
   * @param {() => HlsPosition} read */
  watchHls(read) {
    this.hls = read;
    this.postHls();
  }

  postHls() {
    if (!this.hls || this.stopped) return;
    this.hlsSeq += 1;
    const body = { client_id: this.clientId, seq: this.hlsSeq, ...this.hls(), visible: this.visible };
    api("POST", `/api/sessions/${this.sessionId}/hls-heartbeats`, body).catch(() => undefined);
  }

  /** The session ended: nothing more is reported or shown. */
  stop() {
    this.stopped = true;
    window.clearInterval(this.timer);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.render();
  }

  render() {
    const el = this.indicator;
    const shown = this.started && !this.stopped && (this.receiving || !this.visible);
    el.hidden = !shown;
    if (!shown) {
      el.textContent = "";
      delete el.dataset.state;
      return;
    }
    el.dataset.state = this.visible ? "counting" : "paused";
    el.textContent = this.visible ? "正在计时" : "已暂停：页面不可见";
  }
}
