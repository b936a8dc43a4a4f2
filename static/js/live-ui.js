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
 * Render the questions list; `actions(q)` adds the buttons this page offers.
 * @param {any[]} questions
 * @param {(q: any) => HTMLElement[]} actions
 */
export function renderQuestions(questions, actions) {
  $("#questions").replaceChildren(
    ...(questions.length
      ? questions.map((q) =>
          h("li", { class: q.answered ? "answered" : "", "data-question": String(q.id) }, [
            h("span", {}, [`${q.text}（${q.name}，${q.votes} 赞）`]),
            h("span", {}, actions(q)),
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

/**
 * Show a received stage speaker's track in a tile (one tile per stage seat).
 * @param {string} label "stage1.video" | "stage1.audio" | ...
 * @param {MediaStreamTrack} track
 */
export function showStageTrack(label, track) {
  const seat = label.split(".")[0];
  let video = /** @type {HTMLVideoElement | null} */ (document.querySelector(`video[data-seat="${seat}"]`));
  if (!video) {
    video = /** @type {HTMLVideoElement} */ (h("video", { "data-seat": seat, autoplay: "", playsinline: "" }));
    video.srcObject = new MediaStream();
    video.hidden = true;
    $("#stage-videos").append(video);
  }
  const tile = video;
  /** @type {MediaStream} */ (tile.srcObject).addTrack(track);
  if (track.kind === "video") {
    // Every stage m-line gets a track, seat taken or not: show the tile only while video flows.
    const show = () => {
      tile.hidden = track.muted;
      if (!track.muted) tile.play().catch(() => undefined);
    };
    track.addEventListener("unmute", show);
    track.addEventListener("mute", show);
    show();
  }
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

