// @ts-check
/** UI pieces shared by the studio and watch pages: chat, questions, speaker tiles, tokens. */
import { api } from "./api.js";
import { $, h } from "./ui.js";

/** @param {string} iso */
export function clock(iso) {
  return new Date(iso).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });
}

/**
 * A media token for this session: whip, whep or room (docs/api.md).
 * @param {number} sessionId
 * @param {"whip" | "whep" | "room"} purpose
 * @returns {Promise<string>}
 */
export async function mediaToken(sessionId, purpose) {
  return (await mediaGrant(sessionId, purpose)).token;
}

/**
 * A media token and, for WHIP and WHEP, the STUN/TURN servers (with TURN credentials) this browser
 * may use.
 * @param {number} sessionId
 * @param {"whip" | "whep" | "room"} purpose
 * @returns {Promise<{ token: string, iceServers: RTCIceServer[] }>}
 */
export async function mediaGrant(sessionId, purpose) {
  const res = await api("POST", `/api/sessions/${sessionId}/media-token`, { purpose });
  return { token: res.token, iceServers: res.ice_servers || [] };
}

/** The session id in a /studio/{id} or /watch/{id} path. */
export function sessionIdFromPath() {
  return Number(location.pathname.split("/").filter(Boolean)[1]);
}

/**
 * Append a chat line (text nodes only) and keep the newest in view.
 * @param {{ name: string, text: string, at: string }} msg
 */
export function addChat(msg) {
  const list = $("#chat");
  list.append(h("li", {}, [h("span", { class: "who" }, [msg.name]), msg.text, h("span", { class: "meta" }, [` ${clock(msg.at)}`])]));
  while (list.children.length > 200) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

/**
 * Render the questions list; `actions(q)` adds the buttons this page offers. An answered question is
 * tagged 已答 and muted (not struck through: it is answered, not deleted).
 * @param {any[]} questions
 * @param {(q: any) => HTMLElement[]} actions
 */
export function renderQuestions(questions, actions) {
  $("#questions").replaceChildren(
    ...(questions.length
      ? questions.map((q) =>
          h("li", { class: q.answered ? "answered" : "", "data-question": String(q.id) }, [
            h("span", { class: "question-text" }, [
              ...(q.answered ? [h("span", { class: "tag answered-tag" }, ["已答"]), " "] : []),
              `${q.text}（${q.name}，${q.votes} 赞）`,
            ]),
            h("span", { class: "question-actions" }, actions(q)),
          ]),
        )
      : [h("li", { class: "meta" }, ["暂无提问"])]),
  );
}

/**
 * @param {string} label
 * @param {string} text
 * @param {() => void} onClick
 */
export function smallButton(label, text, onClick) {
  const b = h("button", { class: "button small", type: "button", "data-action": label }, [text]);
  b.addEventListener("click", onClick);
  return b;
}

/** @typedef {{ seat: number, person_id: number, video: boolean, audio: boolean }} StageSeat */

/**
 * Speaker tiles, one per stage seat, inside a container: the seat's received tracks are bound as they
 * arrive (a viewer has tracks for every seat, taken or not), and a tile is shown only while the server
 * says the seat is taken (`show`, from the room channel's `media.stage`), labelled with the speaker.
 */
export class StageTiles {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    /** @type {Map<number, { tile: HTMLElement, video: HTMLVideoElement, caption: HTMLElement }>} */
    this.seats = new Map();
    /** @type {StageSeat[] | null} the last state from the server; null: never told (mute-driven) */
    this.taken = null;
    /** @type {Map<number, string>} */
    this.names = new Map();
    /** @type {number | null} whose tile not to show (a speaker sees their own preview instead) */
    this.self = null;
    /** Whether the browser refused to play sound before a tap (autoplay policy): tiles play muted. */
    this.blocked = false;
    /** Called when a tile's sound could not start without a tap. */
    this.onBlocked = () => {};
  }

  /**
   * Bind a received stage track ("stage1.video", "stage2.audio", ...) to its seat's tile.
   * @param {string} label
   * @param {MediaStreamTrack} track
   */
  addTrack(label, track) {
    const seat = Number(label.slice("stage".length).split(".")[0]);
    const entry = this.seat(seat);
    /** @type {MediaStream} */ (entry.video.srcObject).addTrack(track);
    if (track.kind === "video") {
      // Until the server says who is on stage (an older server: never), a tile follows its video.
      const follow = () => {
        if (this.taken === null) this.render();
      };
      track.addEventListener("unmute", follow);
      track.addEventListener("mute", follow);
    }
    this.render();
  }

  /**
   * The seats the server says are taken (`media.stage`), the speakers' names, and whose tile to skip.
   * @param {StageSeat[]} taken
   * @param {Map<number, string>} [names] person id -> name
   * @param {number | null} [self]
   */
  show(taken, names, self = null) {
    this.taken = taken;
    if (names) this.names = names;
    this.self = self;
    this.render();
  }

  /** Hide and silence every tile (the session ended). */
  clear() {
    this.taken = [];
    this.render();
  }

  /**
   * @private
   * @param {number} seat
   */
  seat(seat) {
    let entry = this.seats.get(seat);
    if (!entry) {
      const label = `stage${seat}`;
      const video = /** @type {HTMLVideoElement} */ (h("video", { "data-seat": label, autoplay: "", playsinline: "" }));
      video.srcObject = new MediaStream();
      const caption = h("figcaption", {}, []);
      const tile = h("figure", { class: "tile", "data-seat": label }, [video, caption]);
      tile.hidden = true;
      this.container.append(tile);
      entry = { tile, video, caption };
      this.seats.set(seat, entry);
    }
    return entry;
  }

  /** @private */
  render() {
    for (const [seat, { tile, video, caption }] of this.seats) {
      const stream = /** @type {MediaStream} */ (video.srcObject);
      let visible;
      let withVideo = true;
      let person = null;
      if (this.taken === null) {
        visible = stream.getVideoTracks().some((t) => !t.muted);
      } else {
        const taken = this.taken.find((s) => s.seat === seat);
        person = taken ? taken.person_id : null;
        visible = Boolean(taken && person !== this.self);
        withVideo = Boolean(taken && taken.video);
      }
      // A speaker never hears themselves, and a free seat stays silent.
      video.muted = !visible || this.blocked;
      tile.hidden = !visible;
      tile.classList.toggle("audio-only", !withVideo);
      caption.textContent = person !== null ? this.names.get(person) || `嘉宾 ${seat}` : "";
      if (visible && video.paused) {
        video.play().catch(() => {
          // Autoplay with sound refused: play muted until the learner taps 点击开启声音.
          this.blocked = true;
          video.muted = true;
          video.play().catch(() => undefined);
          this.onBlocked();
        });
      }
    }
  }

  /** Start the sound that autoplay blocked (call from a tap). */
  resume() {
    this.blocked = false;
    this.render();
    for (const { tile, video } of this.seats.values()) {
      if (!tile.hidden) video.play().catch(() => undefined);
    }
  }
}

/** @type {StageTiles | null} the page's tiles in #stage-videos, for showStageTrack / showStage */
let pageTiles = null;

function tiles() {
  pageTiles ??= new StageTiles($("#stage-videos"));
  return pageTiles;
}

/**
 * Show a received stage speaker's track in the page's tiles (#stage-videos, one tile per stage seat).
 * @param {string} label "stage1.video" | "stage1.audio" | ...
 * @param {MediaStreamTrack} track
 */
export function showStageTrack(label, track) {
  tiles().addTrack(label, track);
}

/**
 * Which stage seats are taken, from the room channel (`welcome.media.stage`, `media.stage`): the page's
 * tiles follow it instead of guessing from tracks.
 * @param {StageSeat[]} taken
 * @param {Map<number, string>} [names]
 */
export function showStage(taken, names) {
  tiles().show(taken, names);
}

/**
 * A one-line form (chat, question): send its trimmed text on submit and clear the input.
 * @param {string} selector the form
 * @param {(text: string) => void} send
 */
export function onSubmitText(selector, send) {
  $(selector).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($(`${selector} input`));
    if (input.value.trim()) send(input.value.trim());
    input.value = "";
  });
}

