"""Benchmark: one 640x360 30 fps lecture relayed to N viewers, forwarding vs aiortc's MediaRelay.

    .venv/bin/python bench/relay.py                       # default sweep (< 10 min on 2 cores)
    .venv/bin/python bench/relay.py --relay 1,8,32 --baseline 1,4 --window-s 10

Separate processes over 127.0.0.1: the server (Lectern's rooms, or a MediaRelay baseline that decodes
and re-encodes per viewer), a publisher (synthetic video encoded by aiortc at ~1 Mbps + Opus) and a
viewers process (real aiortc peers counting RTP packets and frames, never decoding). Prints, per step,
server CPU (% of one core, from /proc/<pid>/stat over the window), delivered fps min/mean, RTP sequence
gaps and time to first frame; the last line is
`relay viewers_per_core=<V> baseline_viewers_per_core=<B> ratio=<V/B>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import benchkit  # noqa: E402  (bench/ is the script's folder, on sys.path)

SECRET, SESSION = benchkit.SECRET, benchkit.SESSION
LOOPBACK = ["127.0.0.1"]
MIN_FPS = 29.0  # a step "keeps up" when every viewer gets at least this many fps and no RTP gaps


# ---------------------------------------------------------------- server process


def serve(mode: str, port: int) -> None:
    from aiohttp import web

    if mode == "relay":
        from infra.appkeys import READINESS, SETTINGS
        from infra.http import error_middleware
        from infra.settings import Settings
        from streaming import live

        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = Settings(
            secret_key=SECRET, ice_host_addresses=tuple(LOOPBACK), room_seat_limit=10_000
        )
        app[READINESS] = {}
        live.setup(app)
    else:
        app = _baseline_app()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _baseline_app() -> Any:
    """aiortc's usual way: MediaRelay hands each viewer decoded frames that its sender re-encodes."""
    from aiohttp import web
    from aiortc import RTCSessionDescription
    from aiortc.contrib.media import MediaBlackhole, MediaRelay

    from streaming import rtc_adapter

    relay = MediaRelay()
    state: dict[str, Any] = {"tracks": {}, "pcs": [], "sinks": []}

    async def answer(pc: Any, offer: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def whip(request: web.Request) -> web.Response:
        pc = rtc_adapter.make_peer_connection([])
        state["pcs"].append(pc)

        @pc.on("track")
        def on_track(track: Any) -> None:
            state["tracks"][track.kind] = track
            # Keep the publisher's frames flowing even with no viewer, as MediaRelay needs a consumer.
            sink = MediaBlackhole()
            sink.addTrack(relay.subscribe(track))
            state["sinks"].append((sink, asyncio.ensure_future(sink.start())))

        sdp = await answer(pc, await request.text())
        return web.Response(status=201, text=sdp, content_type="application/sdp", headers={"Location": "/x"})

    async def whep(request: web.Request) -> web.Response:
        pc = rtc_adapter.make_peer_connection([])
        state["pcs"].append(pc)
        for kind in ("video", "audio"):
            if kind in state["tracks"]:
                pc.addTrack(relay.subscribe(state["tracks"][kind]))
        offer = await request.text()
        sdp = await answer(pc, offer)
        return web.Response(status=201, text=sdp, content_type="application/sdp", headers={"Location": "/y"})

    app = web.Application()
    app.router.add_post(r"/whip/sessions/{session_id:\d+}", whip)
    app.router.add_post(r"/whep/sessions/{session_id:\d+}", whep)
    return app


# ---------------------------------------------------------------- publisher process


def publish(url: str) -> None:
    asyncio.run(_publish(url))


async def _publish(url: str) -> None:
    import aiohttp
    import av
    from aiortc import RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    from streaming import rtc_adapter

    class Synthetic(VideoStreamTrack):
        def __init__(self, width: int = 640, height: int = 360) -> None:
            super().__init__()
            self.width, self.height = width, height
            size = width * height
            base = bytes((x * 7 + (x // width) * 3) % 256 for x in range(2 * size))
            self.lumas = [base[k * 641 : k * 641 + size] for k in range(60)]
            self.chroma = bytes([128]) * (size // 4)
            self.n = 0

        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame(self.width, self.height, "yuv420p")
            frame.planes[0].update(self.lumas[self.n % 60][: frame.planes[0].buffer_size])
            for plane in frame.planes[1:]:
                plane.update(self.chroma[: plane.buffer_size])
            frame.pts, frame.time_base = pts, time_base
            self.n += 1
            return frame

    pc = rtc_adapter.make_peer_connection([])
    pc.addTransceiver(Synthetic(), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {benchkit.token('whip')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pc.localDescription.sdp, headers=headers) as r,
    ):
        assert r.status == 201, await r.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await r.text(), type="answer"))
    await asyncio.Event().wait()  # publish until killed


# ---------------------------------------------------------------- viewers process


def watch(url: str, count: int, warmup_s: float, window_s: float) -> None:
    print(json.dumps(asyncio.run(_watch(url, count, warmup_s, window_s))), flush=True)


async def _watch(url: str, count: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    import aiohttp
    from aiortc import RTCSessionDescription

    from streaming import rtc_adapter

    viewers: list[dict[str, Any]] = []
    all_have_video = asyncio.Event()
    with_video = [0]

    async def join(i: int, http: Any) -> None:
        pc = rtc_adapter.make_peer_connection([])
        v: dict[str, Any] = {
            "pc": pc,
            "frames": [],
            "seqs": 0,
            "gaps": 0,
            "last": None,
            "ts": None,
            "posted": 0.0,
        }
        video = pc.addTransceiver("video", direction="recvonly")
        audio = pc.addTransceiver("audio", direction="recvonly")

        def on_packet(packet: Any) -> None:
            seq, timestamp = packet.sequence_number, packet.timestamp
            last = v["last"]
            if last is not None and seq != (last + 1) & 0xFFFF and ((seq - last) & 0xFFFF) < 0x8000:
                v["gaps"] += ((seq - last) & 0xFFFF) - 1
            if last is None or ((seq - last) & 0xFFFF) < 0x8000:
                v["last"] = seq
            v["seqs"] += 1
            if timestamp != v["ts"]:  # the packets of one video frame share its RTP timestamp
                v["ts"] = timestamp
                v["frames"].append(time.monotonic())
                if len(v["frames"]) == 1:
                    with_video[0] += 1
                    if with_video[0] == count:
                        all_have_video.set()

        # Count, never reassemble or decode: the client must not be what saturates (ENVIRONMENT.md's
        # method). ICE, DTLS and SRTP are still real.
        rtc_adapter.observe_rtp(video.receiver, on_packet, deliver=False)
        rtc_adapter.observe_rtp(audio.receiver, lambda packet: None, deliver=False)
        rtc_adapter.restrict_host_addresses(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {
            "Content-Type": "application/sdp",
            "Authorization": f"Bearer {benchkit.token('whep', 'learner', 100 + i)}",
        }
        v["posted"] = time.monotonic()
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as r:
            assert r.status == 201, await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=await r.text(), type="answer"))
        viewers.append(v)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(join(i, http) for i in range(count)))
    # Steady state only: the window starts `warmup_s` after every viewer has its first frame (ICE and
    # DTLS handshakes of a join storm are not forwarding), or after 20 s for viewers that never get one.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_have_video.wait(), timeout=20.0)
    await asyncio.sleep(warmup_s)  # a benchmark window, not a test wait
    start = time.monotonic()
    marks = [(len(v["frames"]), v["gaps"]) for v in viewers]
    print("WINDOW", flush=True)
    await asyncio.sleep(window_s)
    end = time.monotonic()
    fps = [(len(v["frames"]) - n) / (end - start) for v, (n, _) in zip(viewers, marks, strict=True)]
    gaps = sum(v["gaps"] - g for v, (_, g) in zip(viewers, marks, strict=True))
    first = [v["frames"][0] - v["posted"] for v in viewers if v["frames"]]
    for v in viewers:
        await v["pc"].close()
    return {
        "fps_min": min(fps),
        "fps_mean": statistics.fmean(fps),
        "gaps": gaps,
        "ttff_max_s": max(first) if first else None,
        "no_video": count - len(first),
    }


# ---------------------------------------------------------------- orchestration


def step(mode: str, viewers: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    port = benchkit.free_port()
    base = f"http://127.0.0.1:{port}"
    server = benchkit.spawn(__file__, "server", "--mode", mode, "--port", str(port))
    procs = [server]
    try:
        benchkit.wait_port(port)
        procs.append(benchkit.spawn(__file__, "publisher", "--url", f"{base}/whip/sessions/{SESSION}"))
        time.sleep(2.0)  # let the publisher connect and its encoder settle
        watcher = benchkit.spawn(
            __file__,
            "viewers",
            "--url",
            f"{base}/whep/sessions/{SESSION}",
            "--count",
            str(viewers),
            "--warmup-s",
            str(warmup_s),
            "--window-s",
            str(window_s),
        )
        procs.append(watcher)
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
        if line.strip() != "WINDOW":
            raise RuntimeError(f"viewers failed: {line!r}")
        cpu0, t0 = benchkit.cpu_s(server.pid), time.monotonic()
        result: dict[str, Any] = json.loads(watcher.stdout.readline())
        cpu1, t1 = benchkit.cpu_s(server.pid), time.monotonic()
        # the window measured by the viewers ends when they report; close is not counted
        result["cpu_pct"] = 100.0 * (cpu1 - cpu0) / (t1 - t0)
        watcher.wait(timeout=30)
        return result
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def sweep(mode: str, counts: list[int], warmup_s: float, window_s: float) -> float:
    """Run the steps upward; viewers per core (N / server cores) at the largest N whose viewers all
    kept MIN_FPS with no RTP sequence gaps (the issue's definition)."""
    best = 0.0
    for n in counts:
        r = step(mode, n, warmup_s, window_s)
        ttff = f"{r['ttff_max_s']:.2f}s" if r["ttff_max_s"] is not None else "none"
        print(
            f"{mode:8s} viewers={n:4d} server_cpu={r['cpu_pct']:6.1f}% fps_min={r['fps_min']:5.1f} "
            f"fps_mean={r['fps_mean']:5.1f} rtp_gaps={r['gaps']:5d} first_frame_max={ttff} "
            f"no_video={r['no_video']}",
            flush=True,
        )
        if r["fps_min"] >= MIN_FPS and r["gaps"] == 0 and r["no_video"] == 0 and r["cpu_pct"] > 0:
            best = n / (r["cpu_pct"] / 100.0)
        else:
            break  # saturated: larger N only gets worse
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("server")
    s.add_argument("--mode", choices=["relay", "baseline"], required=True)
    s.add_argument("--port", type=int, required=True)
    p = sub.add_parser("publisher")
    p.add_argument("--url", required=True)
    v = sub.add_parser("viewers")
    v.add_argument("--url", required=True)
    v.add_argument("--count", type=int, required=True)
    v.add_argument("--warmup-s", type=float, default=3.0)
    v.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--relay", default="1,32,64,128,192,256", help="viewer counts for forwarding")
    parser.add_argument("--baseline", default="1,2,4,8,12", help="viewer counts for the MediaRelay baseline")
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--window-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.cmd == "server":
        serve(args.mode, args.port)
    elif args.cmd == "publisher":
        publish(args.url)
    elif args.cmd == "viewers":
        watch(args.url, args.count, args.warmup_s, args.window_s)
    else:
        relay = sweep("relay", [int(x) for x in args.relay.split(",")], args.warmup_s, args.window_s)
        baseline = sweep("baseline", [int(x) for x in args.baseline.split(",")], args.warmup_s, args.window_s)
        ratio = relay / baseline if baseline else float("inf")
        print(
            f"relay viewers_per_core={relay:.1f} baseline_viewers_per_core={baseline:.1f} ratio={ratio:.1f}"
        )


if __name__ == "__main__":
    main()
