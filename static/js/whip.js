// @ts-check
/**
 * WHIP (RFC 9725) publishing and WHEP watching from the browser: protocol code only, no UI.
 * Non-trickle: the offer is sent once ICE gathering is complete. H.264 is preferred for video so the
 * recording can be remuxed without transcoding; VP8 stays in the offer as a fallback.
 */

/** A WHIP/WHEP session on the server: DELETE its `resourceUrl` to leave. */
export class MediaResource {
  /**
   * @param {RTCPeerConnection} pc
   * @param {string} resourceUrl
   * @param {string} token
   */
  constructor(pc, resourceUrl, token) {
    this.pc = pc;
    this.resourceUrl = resourceUrl;
    this.token = token;
  }

  /** Leave: tell the server (best effort) and close the peer connection. */
  async close() {
    try {
      await fetch(this.resourceUrl, { method: "DELETE", headers: { Authorization: `Bearer ${this.token}` } });
    } catch {
      // The server ends resources of dead peers by itself.
    }
    this.pc.close();
  }
}

/** An error answered by the media server in Lectern's error shape. */
export class MediaError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {any} details
   */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * Put H.264 (packetization-mode=1) first in a transceiver's codec list, keeping the rest.
 * @param {RTCRtpTransceiver} transceiver
 */
export function preferH264(transceiver) {
  const caps = RTCRtpReceiver.getCapabilities("video");
  if (!caps || typeof transceiver.setCodecPreferences !== "function") return;
  const h264 = caps.codecs.filter((c) => c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || ""));
  const rest = caps.codecs.filter((c) => !h264.includes(c) && c.mimeType !== "video/VP9" && c.mimeType !== "video/AV1");
  transceiver.setCodecPreferences([...h264, ...rest]);
}

/**
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
function iceGathered(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    // Gathering on loopback is instant; elsewhere, go with the candidates found so far.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Offer, POST it, apply the answer.
 * @param {RTCPeerConnection} pc
 * @param {string} url
 * @param {string} token
 * @returns {Promise<MediaResource>}
 */
async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
    body: pc.localDescription?.sdp || "",
  });
  const text = await res.text();
  if (res.status !== 201) {
    let err = { code: "error", message: res.statusText, details: null };
    try {
      err = JSON.parse(text).error || err;
    } catch {
      // not JSON: keep the status text
    }
    pc.close();
    throw new MediaError(res.status, err.code, err.message, err.details);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: text });
  const location = res.headers.get("Location") || "";
  return new MediaResource(pc, new URL(location, new URL(url, document.baseURI)).toString(), token);
}

/**
 * @param {RTCIceServer[]} iceServers
 * @returns {RTCPeerConnection}
 */
function peer(iceServers) {
  return new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
}

/**
 * Publish tracks through WHIP. `video` labels each video track in order ("camera", "screen").
 * @param {string} sessionUrl e.g. /whip/sessions/42
 * @param {string} token a WHIP bearer token
 * @param {{camera?: MediaStreamTrack | null, screen?: MediaStreamTrack | null, audio?: MediaStreamTrack | null}} tracks
 * @param {RTCIceServer[]} [iceServers]
 * @returns {Promise<MediaResource>}
 */
export async function publish(sessionUrl, token, tracks, iceServers = []) {
  const pc = peer(iceServers);
  /** @type {string[]} */
  const labels = [];
  if (tracks.audio) pc.addTransceiver(tracks.audio, { direction: "sendonly" });
  for (const label of /** @type {const} */ (["camera", "screen"])) {
    const track = tracks[label];
    if (!track) continue;
    if (label === "screen" && "contentHint" in track) track.contentHint = "detail";
    preferH264(pc.addTransceiver(track, { direction: "sendonly" }));
    labels.push(label);
  }
  const url = labels.length ? `${sessionUrl}?video=${labels.join(",")}` : sessionUrl;
  return negotiate(pc, url, token);
}

/**
 * The m-lines a viewer offers, in the order the server binds them to a room's slots (docs/protocol.md):
 * the expert's camera, screen and audio, then two stage seats for promoted speakers.
 */
export const VIEWER_LAYOUT = /** @type {const} */ ([
  ["camera", "video"],
  ["screen", "video"],
  ["audio", "audio"],
  ["stage1.video", "video"],
  ["stage1.audio", "audio"],
  ["stage2.video", "video"],
  ["stage2.audio", "audio"],
]);

/**
 * Watch through WHEP: `onTrack(label, track)` for each slot's track (labels from VIEWER_LAYOUT).
 * @param {string} sessionUrl e.g. /whep/sessions/42
 * @param {string} token a WHEP bearer token
 * @param {(label: string, track: MediaStreamTrack) => void} onTrack
 * @param {RTCIceServer[]} [iceServers]
 * @returns {Promise<MediaResource>}
 */
export async function watch(sessionUrl, token, onTrack, iceServers = []) {
  const pc = peer(iceServers);
  const transceivers = VIEWER_LAYOUT.map(([, kind]) => {
    const t = pc.addTransceiver(kind, { direction: "recvonly" });
    if (kind === "video") preferH264(t);
    return t;
  });
  pc.addEventListener("track", (ev) => {
    const index = transceivers.indexOf(ev.transceiver);
    onTrack(index >= 0 ? VIEWER_LAYOUT[index][0] : "unknown", ev.track);
  });
  return negotiate(pc, sessionUrl, token);
}
