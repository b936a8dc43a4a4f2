// @ts-check
/** The replay page's lecture timeline over its angles (heartbeats: replay-heartbeats.js). */

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
