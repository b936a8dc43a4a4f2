"""Benchmark: do the recorded camera, screen and audio stay in sync over a long lecture?

    .venv/bin/python bench/drift.py --minutes 30      # the issue's figure (≈ 32 minutes)
    .venv/bin/python bench/drift.py --minutes 2       # a quick check

Two processes over 127.0.0.1: the server (Lectern's rooms + streaming.recording, local object store, as
`create_app` wires them) and a publisher (a real aiortc peer) that sends camera, screen and audio in ONE
WHIP publish (`?video=camera,screen`), every track driven by one clock whose origin is the publisher's
start. Each track carries its own send time:
- video (both angles): 320x180 at 15 fps, encoded by aiortc (H.264); frame n is captured at n/15 s of
  the shared clock and shows n as 24 big black/white blocks plus an 8-bit check, so it survives H.264;
- audio: 48 kHz, silence except a 20 ms 1 kHz tone burst starting at every whole second of the clock.
After the lecture the publisher ends it (WHIP DELETE); once the manifest says `finalized`, the recording
is read back with PyAV twice: the HLS segments (init + .m4s of each angle, on the recording's common
timeline) and the downloads (camera.mp4, screen.mp4, at media time + the angle's `start_s`, as the
replay page positions them). At checkpoints (start, every 5 minutes — every 30 s below 10 minutes —,
end), over a 4 s window: offset = recorded time − send time, for each decoded frame (counter → capture
time) and each audio burst (energy centroid − 10 ms → its whole second). Per checkpoint it prints
offset(camera) − offset(screen) and offset(camera) − offset(audio) (medians, ms); the drift of each is
its largest change from the first checkpoint. Last line:
`drift minutes=<M> camera_screen_ms=<max |change|> camera_audio_ms=<max |change|> max_ms=<max of both>`
(the worse of HLS and MP4). Target ≤ 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import benchkit  # noqa: E402  (bench/ is the script's folder, on sys.path)

SECRET, SESSION = benchkit.SECRET, benchkit.SESSION
LOOPBACK = ("127.0.0.1",)
WIDTH, HEIGHT, FPS = 320, 180, 15
COLS, ROWS = 8, 4  # 32 blocks of 40x45: 24 counter bits (rows 0-2, MSB first) + 8 check bits (row 3)
BLOCK_W, BLOCK_H = WIDTH // COLS, HEIGHT // ROWS
BLACK, WHITE = 16, 235
RATE = 48_000
AUDIO_FRAME = 960  # 20 ms; a whole second is 50 frames, so every burst starts on a frame boundary
BURST = 960  # samples of tone at the start of every whole second
TONE_HZ = 1000
WINDOW_S = 4.0  # each checkpoint looks at this much of the recording


# ---------------------------------------------------------------- the frame counter and the tone


def _check(n: int) -> int:
    return ((n >> 16) ^ (n >> 8) ^ n ^ 0x5A) & 0xFF


def counter_luma(n: int) -> bytes:
    """The Y plane (WIDTH x HEIGHT) showing counter n."""
    bits = ((n & 0xFFFFFF) << 8) | _check(n)
    rows = []
    for r in range(ROWS):
        line = b"".join(
            bytes([WHITE if bits >> (31 - (r * COLS + c)) & 1 else BLACK]) * BLOCK_W for c in range(COLS)
        )
        rows.append(line * BLOCK_H)
    return b"".join(rows)


def read_counter(frame: Any) -> int | None:
    """Counter shown by a decoded frame (24 bits), or None when the check bits disagree."""
    plane = frame.planes[0]
    data = memoryview(plane)
    stride = plane.line_size
    bits = 0
    for r in range(ROWS):
        for c in range(COLS):
            x0, y0 = c * BLOCK_W + BLOCK_W // 2 - 6, r * BLOCK_H + BLOCK_H // 2 - 6
            total = 0
            for y in range(y0, y0 + 12, 3):
                row = data[(y * stride) + x0 : (y * stride) + x0 + 12]
                total += sum(row[::3])
            bits = (bits << 1) | (1 if total / 16 > (BLACK + WHITE) / 2 else 0)
    n = bits >> 8
    return n if _check(n) == bits & 0xFF else None


def burst_samples() -> bytes:
    """One audio frame (s16 mono) starting a burst: BURST samples of tone, then silence."""
    out = array("h", [0] * AUDIO_FRAME)
    for i in range(BURST):
        ramp = min(1.0, i / 48, (BURST - i) / 48)  # 1 ms ramps: no click, a clean onset
        out[i] = round(16_000 * ramp * math.sin(2 * math.pi * TONE_HZ * i / RATE))
    return out.tobytes()


# ---------------------------------------------------------------- server process


def serve(port: int, data_dir: Path, drop_audio_every_s: float = 0.0) -> None:
    import logging

    from aiohttp import web

    from infra.appkeys import BUS, OBJECTS, READINESS, SETTINGS
    from infra.bus_memory import MemoryBus
    from infra.http import error_middleware
    from infra.objects_local import LocalObjectStore
    from infra.settings import Settings
    from streaming import live, recording

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if drop_audio_every_s > 0:
        _lose_audio(drop_audio_every_s)
    settings = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK, data_dir=data_dir)
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[READINESS] = {}
    app[BUS] = MemoryBus(retention=1000)
    app[OBJECTS] = LocalObjectStore(settings.objects_dir, SECRET, "http://127.0.0.1")
    recording.setup(app)  # as create_app wires it: before live
    live.setup(app, grace_s=5.0)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _lose_audio(every_s: float) -> None:
    """Fault injection (--drop-audio-every): the recorder never sees one Opus packet (20 ms) every
    `every_s` seconds, exactly as if that RTP packet had been lost on the way (aiortc does not NACK audio)."""
    from recorder import Recorder

    push = Recorder.push
    seen = [0]
    period = max(2, round(every_s * RATE / AUDIO_FRAME))

    def lossy(self: Any, frame: Any) -> Any:
        if frame.track == "audio":
            seen[0] += 1
            if seen[0] % period == 0:
                return None
        return push(self, frame)

    Recorder.push = lossy  # type: ignore[method-assign]


# ---------------------------------------------------------------- publisher process


def publish(url: str, seconds: float) -> None:
    asyncio.run(_publish(url, seconds))


async def _publish(url: str, seconds: float) -> None:
    import aiohttp
    import av
    from aiortc import RTCRtpSender, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    from streaming import rtc_adapter

    origin = time.monotonic()  # the shared clock: every track's send times count from here
    chroma = bytes([128]) * (WIDTH * HEIGHT // 2)
    burst, silence = burst_samples(), bytes(2 * AUDIO_FRAME)

    async def wait_until(clock_s: float) -> None:
        delay = origin + clock_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    class CounterVideo(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n: int | None = None
            self.sent = 0

        async def recv(self) -> av.VideoFrame:
            if self.n is None:  # the first frame due from now on the shared clock
                self.n = math.ceil((time.monotonic() - origin) * FPS)
            n = self.n
            self.n += 1
            await wait_until(n / FPS)
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            frame.planes[0].update(counter_luma(n))
            frame.planes[1].update(chroma[: frame.planes[1].buffer_size])
            frame.planes[2].update(chroma[: frame.planes[2].buffer_size])
            frame.pts, frame.time_base = n * (90_000 // FPS), Fraction(1, 90_000)
            self.sent += 1
            return frame

    class BurstAudio(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.k: int | None = None
            self.sent = 0

        async def recv(self) -> av.AudioFrame:
            if self.k is None:
                self.k = math.ceil((time.monotonic() - origin) * RATE / AUDIO_FRAME)
            k = self.k
            self.k += 1
            await wait_until(k * AUDIO_FRAME / RATE)
            frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_FRAME)
            frame.planes[0].update(burst if (k * AUDIO_FRAME) % RATE == 0 else silence)
            frame.sample_rate = RATE
            frame.pts, frame.time_base = k * AUDIO_FRAME, Fraction(1, RATE)
            self.sent += 1
            return frame

    pc = rtc_adapter.make_peer_connection([])  # no ICE servers: loopback host candidates only
    caps = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    videos = {"camera": CounterVideo(), "screen": CounterVideo()}
    for track in videos.values():
        pc.addTransceiver(track, direction="sendonly").setCodecPreferences(caps)
    audio = BurstAudio()
    pc.addTransceiver(audio, direction="sendonly")
    rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {benchkit.token('whip')}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/whip/sessions/{SESSION}?video=camera,screen",
            data=pc.localDescription.sdp,
            headers=headers,
        ) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
            answer = await resp.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        print(json.dumps({"published_at": time.time()}), flush=True)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:  # the lecture
            await asyncio.sleep(min(left, 60.0))
            print(json.dumps({"elapsed_s": round(time.monotonic() - origin)}), flush=True)
        ended_at = time.time()
        async with http.delete(f"{url}{location}", headers={"Authorization": headers["Authorization"]}) as r:
            assert r.status == 200, await r.text()
        sent = {"camera": videos["camera"].sent, "screen": videos["screen"].sent, "audio": audio.sent}
        print(json.dumps({"ended_at": ended_at, "sent": sent}), flush=True)
    await pc.close()


# ---------------------------------------------------------------- reading the recording back


@dataclass
class Window:
    """What one checkpoint window of the recording shows: offsets (recorded − sent), in seconds."""

    video: dict[str, list[float]] = field(default_factory=lambda: {"camera": [], "screen": []})
    unreadable: dict[str, int] = field(default_factory=lambda: {"camera": 0, "screen": 0})
    samples: list[float] = field(default_factory=list)  # left channel of the camera angle's audio
    audio_start: float | None = None  # recorded time of samples[0]


def _decode(
    path: Path, angle: str, shift_s: float, a: float, b: float, window: Window, *, audio: bool, seek: bool
) -> None:
    """Decode `path` (recorded time = media time + shift_s) and keep what falls in [a, b]."""
    import av

    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "video" or (audio and s.type == "audio")]
        if seek and a - shift_s > 3.0:
            container.seek(int((a - shift_s - 3.0) * 1_000_000), backward=True, any_frame=False)
        for packet in container.demux(streams):
            if packet.dts is not None and float(packet.dts * packet.time_base) + shift_s > b + 1.0:
                break
            frames: list[Any] = packet.decode()
            for frame in frames:
                if frame.time is None:
                    continue
                t = float(frame.time) + shift_s
                if packet.stream.type == "video":
                    if a <= t <= b:
                        n = read_counter(frame)
                        if n is None:
                            window.unreadable[angle] += 1
                        else:
                            window.video[angle].append(t - n / FPS)
                    continue
                if t + frame.samples / frame.sample_rate < a or t > b:
                    continue
                if window.audio_start is None:
                    window.audio_start = t
                # place the samples at their own time (a gap is padded, an overlap overwritten)
                at = max(0, round((t - window.audio_start) * RATE))
                del window.samples[at:]
                window.samples.extend([0.0] * (at - len(window.samples)))
                window.samples.extend(array("f", bytes(frame.planes[0])[: 4 * frame.samples]))


def bursts(window: Window, reference_s: float) -> list[float]:
    """Offsets (recorded − sent) of the tone bursts in a window. Each burst is found by its energy (10 ms
    blocks above a threshold), placed at its energy centroid, and matched to the whole second it was sent
    at through `reference_s` (the camera's offset: audio and video are far closer than ±0.5 s)."""
    x, t0 = window.samples, window.audio_start
    if t0 is None or not x:
        return []
    block = RATE // 100
    energy = [sum(v * v for v in x[i : i + block]) for i in range(0, len(x) - block, block)]
    peak = max(energy, default=0.0)
    if peak <= 0:
        return []
    loud = [e > peak * 0.05 for e in energy]
    out = []
    i = 0
    while i < len(loud):
        if not loud[i]:
            i += 1
            continue
        j = i
        while j < len(loud) and loud[j]:
            j += 1
        lo, hi = max(0, (i - 1) * block), min(len(x), (j + 1) * block)
        weights = [x[s] * x[s] for s in range(lo, hi)]
        total = sum(weights)
        if total > 0 and i > 0 and j < len(loud):  # whole bursts only
            centroid = t0 + (lo + sum(k * w for k, w in enumerate(weights)) / total) / RATE
            start = centroid - BURST / 2 / RATE  # the burst's first sample, as recorded
            second = round(start - reference_s)
            out.append(start - second)
        i = j
    return out


def _median_ms(values: list[float]) -> float | None:
    return 1000 * statistics.median(values) if values else None


@dataclass
class Checkpoint:
    at_s: float
    camera_ms: float | None
    screen_ms: float | None
    audio_ms: float | None
    counts: str

    @property
    def camera_screen(self) -> float | None:
        if self.camera_ms is None or self.screen_ms is None:
            return None
        return self.camera_ms - self.screen_ms

    @property
    def camera_audio(self) -> float | None:
        if self.camera_ms is None or self.audio_ms is None:
            return None
        return self.camera_ms - self.audio_ms


def _checkpoints(start: float, end: float) -> list[float]:
    step = 300.0 if end - start >= 600 else 30.0
    points = []
    t = start
    while t + WINDOW_S < end:
        points.append(t)
        t += step
    last = end - WINDOW_S
    if not points or last - points[-1] > 1.0:
        points.append(last)
    return points


def measure(recording: Path, manifest: dict[str, Any], source: str, work: Path) -> list[Checkpoint]:
    angles = manifest["angles"]
    start = max(a["segments"][0]["start_s"] for a in angles.values()) + 0.5
    end = min(a["segments"][-1]["start_s"] + a["segments"][-1]["duration_s"] for a in angles.values()) - 0.5
    out = []
    for at in _checkpoints(start, end):
        a, b = at, at + WINDOW_S
        window = Window()
        for angle in ("camera", "screen"):
            if source == "hls":
                path = work / f"{angle}-{at:.0f}.mp4"
                _join_segments(recording / angle, angles[angle]["segments"], a, b, path)
                _decode(path, angle, 0.0, a, b, window, audio=angle == "camera", seek=False)
                path.unlink()
            else:
                shift = angles[angle]["segments"][0]["start_s"]  # the replay page: media time + start_s
                mp4 = recording / f"{angle}.mp4"
                _decode(mp4, angle, shift, a, b, window, audio=angle == "camera", seek=True)
        camera = _median_ms(window.video["camera"])
        audio = bursts(window, camera / 1000) if camera is not None else []
        out.append(
            Checkpoint(
                at_s=at,
                camera_ms=camera,
                screen_ms=_median_ms(window.video["screen"]),
                audio_ms=_median_ms(audio),
                counts=(
                    f"frames camera={len(window.video['camera'])} screen={len(window.video['screen'])} "
                    f"unreadable={window.unreadable['camera'] + window.unreadable['screen']} "
                    f"bursts={len(audio)} spread_ms={_spread_ms(window, audio)}"
                ),
            )
        )
    return out


def _spread_ms(window: Window, audio: list[float]) -> str:
    parts = [max(v) - min(v) for v in (*window.video.values(), audio) if v]
    return f"{1000 * max(parts):.1f}" if parts else "-"


def _join_segments(angle_dir: Path, segments: list[dict[str, Any]], a: float, b: float, out: Path) -> None:
    chosen = [s for s in segments if s["start_s"] + s["duration_s"] >= a - 0.1 and s["start_s"] <= b]
    periods = {s["period"] for s in chosen}
    assert len(periods) == 1, f"window [{a}, {b}] spans periods {periods}"
    period = periods.pop()
    init = angle_dir / ("init.mp4" if period == 1 else f"init_{period:03d}.mp4")
    with out.open("wb") as f:
        f.write(init.read_bytes())
        for s in chosen:
            f.write((angle_dir / f"seg_{s['seq']:06d}.m4s").read_bytes())


def drift(points: list[Checkpoint], attr: str) -> float:
    values: list[float] = [v for p in points if (v := getattr(p, attr)) is not None]
    if len(values) < 2:
        return math.nan
    return max(abs(v - values[0]) for v in values)


def report(source: str, points: list[Checkpoint]) -> tuple[float, float]:
    def fmt(v: float | None) -> str:
        return f"{v:8.1f}" if v is not None else "       -"

    print(f"\n{source}: offsets = recorded time − send time (ms); changes are drift")
    print("  at_s   camera   screen    audio  cam−scr  cam−aud")
    for p in points:
        print(
            f"{p.at_s:6.0f} {fmt(p.camera_ms)} {fmt(p.screen_ms)} {fmt(p.audio_ms)} "
            f"{fmt(p.camera_screen)} {fmt(p.camera_audio)}   {p.counts}"
        )
    cs, ca = drift(points, "camera_screen"), drift(points, "camera_audio")
    print(
        f"{source}: drift camera−screen {cs:.1f} ms, camera−audio {ca:.1f} ms (max |change| from the first)"
    )
    return cs, ca


# ---------------------------------------------------------------- orchestration


def _finalized(objects: Path) -> Path | None:
    for path in objects.glob(f"hls/{SESSION}/*/manifest.json"):
        try:
            if json.loads(path.read_text())["state"] == "finalized":
                return path.parent
        except (ValueError, KeyError):
            pass  # being rewritten
    return None


def _lines(stream: Any) -> Iterator[dict[str, Any]]:
    for line in stream:
        if line.startswith("{"):
            yield json.loads(line)


def run(minutes: float, keep: bool, drop_audio_every_s: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    objects = tmp / "objects"
    port = benchkit.free_port()
    server = benchkit.spawn(__file__, "serve", str(port), str(tmp), str(drop_audio_every_s))
    try:
        benchkit.wait_port(port)
        publisher = benchkit.spawn(__file__, "publish", f"http://127.0.0.1:{port}", str(minutes * 60))
        assert publisher.stdout is not None
        cpu0 = {"server": benchkit.cpu_s(server.pid), "publisher": benchkit.cpu_s(publisher.pid)}
        t0 = time.monotonic()
        print(f"publishing {minutes:g} min of camera + screen (320x180 {FPS} fps) + audio", flush=True)
        end: dict[str, Any] = {}
        cpu: dict[str, str] = {}
        for msg in _lines(publisher.stdout):
            if "elapsed_s" in msg and msg["elapsed_s"] % 300 < 60:
                print(f"  {msg['elapsed_s'] // 60} min", flush=True)
            if "ended_at" in msg:
                end = msg
                cpu = {
                    name: f"{100 * (benchkit.cpu_s(proc.pid) - cpu0[name]) / (time.monotonic() - t0):.1f} %"
                    for name, proc in (("server", server), ("publisher", publisher))
                }
        if publisher.wait(timeout=60) != 0 or not end:
            raise RuntimeError("the publisher failed")
        deadline = time.monotonic() + 120
        while (recording := _finalized(objects)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("recording not finalized 120 s after the end")
            time.sleep(0.1)
        print(
            f"sent {end['sent']}; finalized {time.time() - end['ended_at']:.2f} s after the end", flush=True
        )
        print(f"CPU during the lecture, % of one core: {cpu}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    manifest = json.loads((recording / "manifest.json").read_text())
    for name, a in manifest["angles"].items():
        last = a["segments"][-1]
        print(
            f"{name}: start_s={a['segments'][0]['start_s']:.3f} "
            f"end_s={last['start_s'] + last['duration_s']:.3f} "
            f"segments={len(a['segments'])} periods={len({s['period'] for s in a['segments']})}"
        )
    work = tmp / "work"
    work.mkdir()
    results = [report(source, measure(recording, manifest, source, work)) for source in ("hls", "mp4")]
    cs = max(r[0] for r in results)
    ca = max(r[1] for r in results)
    if keep:
        print(f"recording kept in {recording}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"drift minutes={minutes:g} camera_screen_ms={cs:.1f} camera_audio_ms={ca:.1f} "
        f"max_ms={max(cs, ca):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("data_dir", type=Path)
    s.add_argument("drop_audio_every_s", type=float)
    p = sub.add_parser("publish")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    parser.add_argument("--minutes", type=float, default=30.0, help="lecture length (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the recording (its path is printed)")
    parser.add_argument(
        "--drop-audio-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="fault injection: the recorder misses one Opus packet this often, as with a lost RTP packet",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.data_dir, args.drop_audio_every_s)
    elif args.command == "publish":
        publish(args.url, args.seconds)
    else:
        run(args.minutes, args.keep, args.drop_audio_every)


if __name__ == "__main__":
    main()
