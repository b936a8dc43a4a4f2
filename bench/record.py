"""Benchmark: recording one 60 s 1280x720 30 fps lecture; Lectern's recorder vs aiortc's MediaRecorder.

    .venv/bin/python bench/record.py                  # about 4 minutes on 2 cores
    .venv/bin/python bench/record.py --seconds 20     # a quicker, noisier run

Separate processes over 127.0.0.1: the server and a publisher (a real aiortc peer sending pre-encoded
H.264 720p30 at ~2.5 Mbps with keyframes every 2 s, plus Opus; pre-encoded so that the publisher's own
encoder never competes with the server for the 2 cores). Three server runs, each fed the same lecture:
- floor: Lectern's rooms (WHIP, frames tapped, nothing recorded);
- record: the same plus streaming.recording (the recorder: remux to fMP4 HLS, Opus → AAC, local store),
  including the finalization after the end (MP4 + VOD playlist);
- baseline: a plain aiortc server whose tracks go to aiortc's MediaRecorder (decode, re-encode to MP4).
Server CPU is read from /proc/<pid>/stat (% of one core) from the publish to the end of the lecture, and
for `record` and `baseline` until their output is complete. The last line is
`record cpu_pct_per_lecture=<record - floor> baseline_cpu_pct=<baseline - floor> ready_after_end_s=<...>`
where ready_after_end_s is from the WHIP DELETE until the VOD playlist (with #EXT-X-ENDLIST) and the MP4
are in the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import benchkit  # noqa: E402  (bench/ is the script's folder, on sys.path)

SECRET, SESSION = benchkit.SECRET, benchkit.SESSION
LOOPBACK = ("127.0.0.1",)
WIDTH, HEIGHT, FPS = 1280, 720, 30
GOP_FRAMES = 60  # a keyframe every 2 s: the pre-encoded publisher cannot honour keyframe requests
CLIP_FRAMES = 300  # 10 s, looped


# ---------------------------------------------------------------- server process


def serve(mode: str, port: int, data_dir: Path) -> None:
    from aiohttp import web

    logging_setup()
    app = _baseline_app(data_dir) if mode == "baseline" else _lectern_app(mode, data_dir)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def logging_setup() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _lectern_app(mode: str, data_dir: Path) -> Any:
    from aiohttp import web

    from infra.appkeys import BUS, OBJECTS, READINESS, SETTINGS
    from infra.bus_memory import MemoryBus
    from infra.http import error_middleware
    from infra.objects_local import LocalObjectStore
    from infra.settings import Settings
    from streaming import live, recording

    settings = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK, data_dir=data_dir)
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[READINESS] = {}
    app[BUS] = MemoryBus(retention=1000)
    if mode == "record":
        app[OBJECTS] = LocalObjectStore(settings.objects_dir, SECRET, "http://127.0.0.1")
        recording.setup(app)  # exactly as create_app wires it: before live
    live.setup(app, grace_s=5.0)
    return app


def _baseline_app(data_dir: Path) -> Any:
    """aiortc's usual way to record: MediaRecorder decodes the tracks and re-encodes them to MP4."""
    from aiohttp import web
    from aiortc import RTCSessionDescription
    from aiortc.contrib.media import MediaRecorder

    from streaming import rtc_adapter

    out = data_dir / "objects" / "baseline.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}

    async def whip(request: web.Request) -> web.Response:
        pc = rtc_adapter.make_peer_connection([])
        recorder = MediaRecorder(str(out))
        state.update(pc=pc, recorder=recorder)

        @pc.on("track")
        def on_track(track: Any) -> None:
            recorder.addTrack(track)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createAnswer())
        await recorder.start()
        return web.Response(
            status=201,
            text=str(pc.localDescription.sdp),
            content_type="application/sdp",
            headers={"Location": "/whip/resources/x"},
        )

    async def delete(_request: web.Request) -> web.Response:
        await state["recorder"].stop()  # flushes the encoders and writes the MP4 trailer
        await state["pc"].close()
        (data_dir / "objects" / "baseline.done").write_text("done")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(r"/whip/sessions/{session_id:\d+}", whip)
    app.router.add_delete("/whip/resources/{rid}", delete)
    return app


# ---------------------------------------------------------------- publisher process


def _encode_clip() -> list[tuple[bytes, bool]]:
    """10 s of moving 720p stripes as H.264 (baseline, SPS/PPS before each IDR), about 2.5 Mbps."""
    import av

    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.framerate = FPS
    enc.bit_rate = 2_500_000
    enc.options = {
        "profile": "baseline",
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"repeat-headers=1:scenecut=0:keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}",
    }
    base = bytes((x * 7 + (x // WIDTH) * 3) % 256 for x in range(WIDTH * HEIGHT * 2))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
    packets: list[tuple[bytes, bool]] = []
    for n in range(CLIP_FRAMES):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        offset = (n * 13) % WIDTH
        frame.planes[0].update(base[offset : offset + frame.planes[0].buffer_size])
        frame.planes[1].update(chroma[: frame.planes[1].buffer_size])
        frame.planes[2].update(chroma[: frame.planes[2].buffer_size])
        frame.pts = n
        packets += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(frame)]
    packets += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    assert packets[0][1], "the clip must start on an IDR"
    assert len(packets) == CLIP_FRAMES, "one packet a frame"
    return packets


def publish(url: str, seconds: float) -> None:
    asyncio.run(_publish(url, seconds))


async def _publish(url: str, seconds: float) -> None:
    import aiohttp
    import av
    from aiortc import RTCRtpSender, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

    from streaming import rtc_adapter

    clip = _encode_clip()

    class PreEncoded(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0
            self.start: float | None = None

        async def recv(self) -> av.Packet[Any]:
            if self.start is None:
                self.start = time.monotonic()
            due = self.start + self.n / FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            data, _key = clip[self.n % CLIP_FRAMES]
            packet = av.Packet(data)
            packet.pts = packet.dts = self.n * 3000
            packet.time_base = Fraction(1, 90_000)
            self.n += 1
            return packet

    pc = rtc_adapter.make_peer_connection([])
    video = PreEncoded()
    transceiver = pc.addTransceiver(video, direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType == "video/H264"])
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {benchkit.token('whip')}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/whip/sessions/{SESSION}", data=pc.localDescription.sdp, headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
            answer = await resp.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        print(json.dumps({"published_at": time.time()}), flush=True)
        await asyncio.sleep(seconds)  # the lecture
        ended_at = time.time()
        async with http.delete(f"{url}{location}", headers={"Authorization": headers["Authorization"]}) as r:
            assert r.status == 200, await r.text()
        print(json.dumps({"ended_at": ended_at, "frames": video.n}), flush=True)
    await pc.close()


# ---------------------------------------------------------------- orchestration


def _output_ready(mode: str, objects: Path) -> bool:
    if mode == "baseline":
        return (objects / "baseline.done").exists()
    if mode == "floor":
        return True
    playlists = list(objects.glob(f"hls/{SESSION}/*/camera/index.m3u8"))
    mp4s = list(objects.glob(f"hls/{SESSION}/*/camera.mp4"))
    return bool(playlists and mp4s and "#EXT-X-ENDLIST" in playlists[0].read_text())


def run(mode: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-record-{mode}-") as tmp:
        data_dir = Path(tmp)
        objects = data_dir / "objects"
        port = benchkit.free_port()
        server = benchkit.spawn(__file__, "serve", mode, str(port), str(data_dir))
        try:
            benchkit.wait_port(port)
            publisher = benchkit.spawn(__file__, "publish", f"http://127.0.0.1:{port}", str(seconds))
            assert publisher.stdout is not None
            json.loads(publisher.stdout.readline())  # published
            cpu0, t0 = benchkit.cpu_s(server.pid), time.monotonic()
            end = json.loads(publisher.stdout.readline())
            cpu_live, t_live = benchkit.cpu_s(server.pid), time.monotonic()
            deadline = time.monotonic() + 120
            while not _output_ready(mode, objects):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: output not ready 120 s after the end")
                time.sleep(0.02)
            ready_after_end_s = time.time() - end["ended_at"]
            cpu1 = benchkit.cpu_s(server.pid)
            publisher.wait(timeout=30)
            result = {
                "mode": mode,
                "frames": end["frames"],
                "live_s": t_live - t0,
                "cpu_pct_live": 100.0 * (cpu_live - cpu0) / (t_live - t0),
                # finalization included, spread over the lecture's duration
                "cpu_pct": 100.0 * (cpu1 - cpu0) / (t_live - t0),
                "finalize_cpu_s": cpu1 - cpu_live,
                "ready_after_end_s": ready_after_end_s if mode != "floor" else 0.0,
                "output_bytes": sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
                if objects.exists()
                else 0,
            }
            if mode == "record":
                result.update(_probe(objects))
            return result
        finally:
            server.terminate()
            server.wait(timeout=30)


def _probe(objects: Path) -> dict[str, Any]:
    playlist = next(objects.glob(f"hls/{SESSION}/*/camera/index.m3u8"))
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_name,nb_read_packets:format=duration", "-of", "json", str(playlist)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    return {
        "hls_streams": [(s["codec_name"], int(s["nb_read_packets"])) for s in doc["streams"]],
        "hls_duration_s": float(doc["format"]["duration"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("mode", choices=["floor", "record", "baseline"])
    s.add_argument("port", type=int)
    s.add_argument("data_dir", type=Path)
    p = sub.add_parser("publish")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    parser.add_argument("--seconds", type=float, default=60.0, help="lecture length (default 60)")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.mode, args.port, args.data_dir)
        return
    if args.command == "publish":
        publish(args.url, args.seconds)
        return
    results = {}
    for mode in ("floor", "record", "baseline"):
        r = run(mode, args.seconds)
        results[mode] = r
        extra = {k: v for k, v in r.items() if k not in ("mode", "cpu_pct", "cpu_pct_live")}
        print(
            f"{mode:8s} server_cpu={r['cpu_pct']:6.1f}% (live only {r['cpu_pct_live']:5.1f}%) {extra}",
            flush=True,
        )
    floor = results["floor"]["cpu_pct"]
    ours = results["record"]["cpu_pct"] - floor
    baseline = results["baseline"]["cpu_pct"] - floor
    print(
        f"record cpu_pct_per_lecture={ours:.1f} baseline_cpu_pct={baseline:.1f} "
        f"ready_after_end_s={results['record']['ready_after_end_s']:.2f}"
    )


if __name__ == "__main__":
    main()
