// @ts-check
/**
 * The room channel's browser client (protocol: docs/channel.md). One WebSocket per page, JSON messages
 * both ways, reconnection with backoff when the connection drops. Protocol only: no UI code here.
 */

/** @typedef {"expert" | "staff" | "learner"} Role */
/** @typedef {{ person_id: number, name: string, role: Role }} ParticipantInfo */
/**
 * @typedef {{ type: "chat", id: number, person_id: number, name: string, role: Role, text: string,
 *             at: string }} ChatMessage
 */
/**
 * @typedef {{ id: number, person_id: number, name: string, text: string, votes: number,
 *             answered: boolean, asked_at: string }} Question
 */
/** @typedef {ParticipantInfo & { raised_at: string }} RaisedHand */
/**
 * @typedef {{ type: "presence_check", check_id: string, nonce: string, deadline_at: string, window_s: number }}
 *   PresenceCheckPrompt
 */
/**
 * @typedef {{ type: "presence_tally", check_id: string, answered: number, expected: number,
 *             deadline_at: string, closed: boolean }} PresenceTally
 */
/**
 * What the live room publishes (docs/channel.md, "What is published").
 * @typedef {{ status: "waiting" | "live" | "reconnecting" | "ended",
 *             expert: { camera: boolean, screen: boolean, audio: boolean },
 *             stage: { seat: number, person_id: number, video: boolean, audio: boolean }[],
 *             grace_ends_at: string | null }} MediaState
 */
/**
 * @typedef {{ type: "welcome", session_id: number, you: ParticipantInfo, participants: ParticipantInfo[],
 *             viewer_count: number, chat: ChatMessage[], questions: Question[],
 *             stage: ParticipantInfo[], media?: MediaState, hand_raised?: boolean, hands?: RaisedHand[],
 *             checks?: PresenceTally[], heartbeat_period_s?: number }} Welcome
 */
/**
 * @typedef {{ type: "error", code: string, message: string, field: string | null,
 *             in_reply_to: string | null }} ChannelErrorMessage
 */
/**
 * Not sent by the server: the client's own connection state, delivered like a message.
 * @typedef {{ type: "connection", state: "connecting" | "open" | "reconnecting" | "closed",
 *             attempt: number, code: number | null }} ConnectionState
 */

/**
 * Every message a handler can receive, by type.
 * @typedef {{
 *   welcome: Welcome,
 *   joined: { type: "joined", participant: ParticipantInfo },
 *   left: { type: "left", person_id: number },
 *   viewer_count: { type: "viewer_count", count: number },
 *   chat: ChatMessage,
 *   questions: { type: "questions", questions: Question[] },
 *   hand: { type: "hand", raised: boolean },
 *   hands: { type: "hands", queue: RaisedHand[] },
 *   stage: { type: "stage", speakers: ParticipantInfo[] },
 *   promoted: { type: "promoted", whip_token: string, whip_url: string },
 *   demoted: { type: "demoted" },
 *   presence_check: PresenceCheckPrompt,
 *   presence_ack: { type: "presence_ack", check_id: string, answered_at: string },
 *   presence_tally: PresenceTally,
 *   heartbeat_ack: { type: "heartbeat_ack", seq: number },
 *   media: { type: "media" } & MediaState,
 *   session_ended: { type: "session_ended", reason: string },
 *   error: ChannelErrorMessage,
 *   connection: ConnectionState,
 * }} RoomMessages
 */

/** @typedef {string | (() => Promise<string>)} TokenSource a token, or a function fetching a fresh one */

/** Close code the server uses once the session is over (no reconnecting after it). */
export const CLOSE_SESSION_ENDED = 4000;
/** The person opened this room in more places than allowed: this, the oldest, was closed (no reconnect). */
export const CLOSE_REPLACED = 4001;
/** The person may no longer be in this room, e.g. they withdrew from the course (no reconnect). */
export const CLOSE_REVOKED = 4003;
const FINAL_CLOSES = [CLOSE_SESSION_ENDED, CLOSE_REPLACED, CLOSE_REVOKED];

/**
 * @typedef {object} RoomChannelOptions
 * @property {number} [initialDelayMs] first reconnect delay (doubles each failed attempt)
 * @property {number} [maxDelayMs] longest reconnect delay
 * @property {number} [maxAttempts] give up after this many reconnects in a row (Infinity: never)
 */

export class RoomChannel {
  /** @param {RoomChannelOptions} [options] */
  constructor(options = {}) {
    this.initialDelayMs = options.initialDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.maxAttempts = options.maxAttempts ?? Infinity;
    /** @type {WebSocket | null} */
    this.socket = null;
    /** @type {Map<string, Set<(message: any) => void>>} */
    this.handlers = new Map();
    /** @type {string} */
    this.url = "";
    /** @type {TokenSource} */
    this.token = "";
    this.attempt = 0;
    this.stopped = true;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
  }

  /**
   * Open the channel. Resolves with the first welcome; rejects if that first connection fails.
   * Later drops reconnect on their own, with backoff, until `close()`, the session ends, or the server
   * closes with a final code (4001, 4003).
   * @param {string} url e.g. "/ws/sessions/42" (relative to the page, http(s) becomes ws(s))
   * @param {TokenSource} token the room token, or a function that fetches a fresh one per attempt
   * @returns {Promise<Welcome>}
   */
  connect(url, token) {
    this.url = url;
    this.token = token;
    this.stopped = false;
    this.attempt = 0;
    return new Promise((resolve, reject) => {
      const offWelcome = this.on("welcome", (welcome) => {
        offWelcome();
        offState();
        resolve(welcome);
      });
      const offState = this.on("connection", (state) => {
        if (state.state === "reconnecting" || state.state === "closed") {
          offWelcome();
          offState();
          this.close();
          reject(new Error(`room channel closed before it opened (code ${state.code})`));
        }
      });
      void this.open();
    });
  }

  /** Close for good (no reconnect). */
  close() {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "bye");
  }

  /**
   * Listen to one message type; returns a function that stops listening.
   * @template {keyof RoomMessages} K
   * @param {K} type
   * @param {(message: RoomMessages[K]) => void} handler
   * @returns {() => void}
   */
  on(type, handler) {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /** @param {string} text */
  chat(text) {
    return this.send({ type: "chat", text });
  }

  /** @param {string} text */
  ask(text) {
    return this.send({ type: "ask", text });
  }

  /** @param {number} questionId */
  upvote(questionId) {
    return this.send({ type: "upvote", question_id: questionId });
  }

  /**
   * Expert only.
   * @param {number} questionId
   * @param {boolean} [answered]
   */
  markAnswered(questionId, answered = true) {
    return this.send({ type: "mark_answered", question_id: questionId, answered });
  }

  raiseHand() {
    return this.send({ type: "raise_hand" });
  }

  lowerHand() {
    return this.send({ type: "lower_hand" });
  }

  /**
   * Expert only: bring a learner on stage (they receive a "promoted" message with a WHIP token).
   * @param {number} personId
   */
  promote(personId) {
    return this.send({ type: "promote", person_id: personId });
  }

  /**
   * Expert only.
   * @param {number} personId
   */
  demote(personId) {
    return this.send({ type: "demote", person_id: personId });
  }

  /**
   * Expert only: challenge every learner to answer within `windowS` seconds (10–300, default 60).
   * @param {number} [windowS]
   */
  presenceCheck(windowS) {
    const message = windowS === undefined ? { type: "presence_check" } : { type: "presence_check", window_s: windowS };
    return this.send(message);
  }

  /**
   * Learner only: answer a presence check, echoing the nonce of the prompt this person was shown.
   * @param {string} checkId
   * @param {string} nonce
   */
  answerPresence(checkId, nonce) {
    return this.send({ type: "presence_answer", check_id: checkId, nonce });
  }

  /**
   * Learner's live page: still here (every `heartbeat_period_s` of the welcome). `seq` increases with
   * every heartbeat of the page (the server stores each one as evidence and answers `heartbeat_ack`).
   * @param {number} seq
   * @param {boolean} visible
   */
  heartbeat(seq, visible) {
    return this.send({ type: "heartbeat", seq, visible });
  }

  /** Learner's live page: the page became visible or hidden. @param {boolean} visible */
  visibility(visible) {
    return this.send({ type: "visibility", visible });
  }

  /** Expert only: ask the server to end the session. */
  endSession() {
    return this.send({ type: "end_session" });
  }

  /**
   * Send one message now. Nothing is queued while disconnected: stale actions are not replayed.
   * @param {{ type: string } & Record<string, unknown>} message
   * @returns {boolean} whether it was handed to an open socket
   */
  send(message) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** @private */
  async open() {
    if (this.stopped) return;
    this.emit({ type: "connection", state: "connecting", attempt: this.attempt, code: null });
    let token;
    try {
      token = typeof this.token === "string" ? this.token : await this.token();
    } catch {
      this.dropped(1006);
      return;
    }
    if (this.stopped) return;
    const target = new URL(this.url, location.href);
    target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
    target.searchParams.set("token", token);
    const socket = new WebSocket(target.toString());
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      /** @type {{ type?: unknown }} */
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message.type === "string") {
        if (message.type === "welcome") {
          this.attempt = 0; // a working connection resets the backoff
          this.emit({ type: "connection", state: "open", attempt: 0, code: null });
        }
        this.emit(/** @type {{ type: string }} */ (message));
      }
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return; // replaced or closed on purpose
      this.socket = null;
      this.dropped(event.code);
    });
  }

  /**
   * @private
   * @param {number} code
   */
  dropped(code) {
    if (this.stopped || FINAL_CLOSES.includes(code) || this.attempt >= this.maxAttempts) {
      this.stopped = true;
      this.emit({ type: "connection", state: "closed", attempt: this.attempt, code });
      return;
    }
    this.attempt += 1;
    const ceiling = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** (this.attempt - 1));
    const delayMs = ceiling / 2 + Math.random() * (ceiling / 2); // jitter: not every viewer at once
    this.emit({ type: "connection", state: "reconnecting", attempt: this.attempt, code });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.open();
    }, delayMs);
  }

  /**
   * @private
   * @param {{ type: string } & Record<string, unknown>} message
   */
  emit(message) {
    for (const handler of [...(this.handlers.get(message.type) ?? [])]) {
      try {
        handler(message);
      } catch (err) {
        console.error("room channel handler failed", message.type, err);
      }
    }
  }
}
