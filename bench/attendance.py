"""Attendance evidence end to end: learners' heartbeats over the room channel and HTTP into PostgreSQL.

    .venv/bin/python bench/attendance.py [--rate 10000] [--seconds 10] [--http-share 0.1] [--generators 2]

Runs itself inside `unshare -n` (loopback only), starts its own PostgreSQL and Redis with
scripts/services/*.sh in a temp dir, seeds a course with a finalized replay and `--http-clients` learners
(server-side login sessions written as a login writes them), and starts the real app (`python -m
streaming`: catalog with its consumer, room channel, outbox, Redis bus, PostgreSQL) with
tests/server.py's `running_server`. An administrator stores a credit policy with a 2 s heartbeat period
through the API (so that a replay client may send 10 heartbeats a second within its per-period limit).

Load (open loop: a heartbeat's latency runs from its scheduled time, so a stall is not hidden), from
`--generators` processes, each one asyncio loop with many connections:
- room channel: `--conns` WebSockets (each its own learner with a room token minted with the server's key
  as infra/tokens.py does; `--rooms` live rooms), each sending `{"type": "heartbeat", "seq", "visible"}`
  at rate / conns per second, below the channel's per-connection limit (10 frames/s): many connections,
  no raised limits. Latency: send → `heartbeat_ack`, which the channel sends once the `live.heartbeat`
  event's outbox fsync returned.
- HTTP: `--http-clients` replay players (each opens a playback, `POST /api/replays/{rec}/playback`,
  then `POST /api/playback/{client}/heartbeats` with its token), `--http-share` of the rate. Latency:
  send → 200 (returned after the outbox fsync).

Measured: `heartbeats_per_s` = rows committed in `heartbeats` over the time from the first send to the
last commit (the consumer drains everything before the clock stops); `p99_ms` over every heartbeat
(both paths); lost = sent − committed rows. Baseline in the same run: the same generators against an
aiohttp echo server (acks each heartbeat at once: transport and load generator, nothing stored).

Last line: `attendance heartbeats_per_s=<...> p99_ms=<...> lost=<sent-committed>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.benchkit import free_port  # noqa: E402

ROOM_BASE = 1_000_000  # room ids the catalog does not have: admitted by signature and expiry alone
POLICY_PERIOD_S = 2


def services(workdir: Path) -> tuple[str, str]:
    """PostgreSQL and Redis on free loopback ports, as `make test` starts them."""
    pg = subprocess.run(
        ["bash", "scripts/services/postgres.sh", "start", str(workdir / "pg"), str(free_port())],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout
    rd = subprocess.run(
        ["bash", "scripts/services/redis.sh", "start", str(workdir / "redis"), str(free_port())],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout
    return pg.strip().split("=", 1)[1], rd.strip().split("=", 1)[1]


def stop_services(workdir: Path) -> None:
    for name in ("postgres", "redis"):
        short = "pg" if name == "postgres" else "redis"
        subprocess.run(
            ["bash", f"scripts/services/{name}.sh", "stop", str(workdir / short)], cwd=REPO, check=False
        )


# -- seeding -----------------------------------------------------------------------------------------


async def seed(database_url: str, http_clients: int) -> dict[str, Any]:
    """A published course, an ended session with a long finalized replay, enrolled learners with login
    sessions (the rows `POST /api/auth/login` writes; argon2 logins would only measure argon2)."""
    from catalog.db import Database
    from catalog.domain import Role
    from catalog.models import Session
    from infra.settings import normalise_database_url
    from tests.integration.catalog.conftest import seed_world

    db = Database(normalise_database_url(database_url))
    try:
        world = await seed_world(db, "not-a-login-hash")
        start = datetime.now(UTC) - timedelta(hours=2)
        session_id = await world.session(world.course_id, start=start)
        async with db.sessions.begin() as s:
            row = await s.get(Session, session_id)
            assert row is not None
            row.actual_start, row.actual_end = start, start + timedelta(hours=1)
        recording_id = await world.recording(session_id, duration_s=36_000.0, screen=False)
        employer = world.orgs["employer"]
        learners = []
        for i in range(http_clients):
            actor = await world.person(f"bench{i}", [(Role.LEARNER, employer)], employer=employer)
            await world.enroll(actor.person_id, world.course_id)
            learners.append(actor.headers)
        return {"recording_id": recording_id, "learners": learners, "admin": world.actors["admin"].headers}
    finally:
        await db.close()


# -- child: the load generator -------------------------------------------------------------------------


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.latencies: list[float] = []
        self.sent_ws = 0
        self.sent_http = 0
        self.acked = 0
        self.http_ok = 0
        self.errors: dict[str, int] = {}
        self.pending: list[dict[int, float]] = []
        self.sending = True
        self.all_acked = asyncio.Event()

    def ack(self, latency_s: float) -> None:
        self.latencies.append(latency_s)
        self.acked += 1
        if not self.sending and self.acked >= self.sent_ws:
            self.all_acked.set()

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def generate(args: argparse.Namespace, plan: dict[str, Any]) -> None:
    import aiohttp

    from infra.tokens import Claims, sign

    load = Load(args)
    loop = asyncio.get_running_loop()
    # Bounded: requests beyond it wait in the client (their latency runs from the scheduled time).
    session = aiohttp.ClientSession(args.url, connector=aiohttp.TCPConnector(limit=256))
    sockets_session = aiohttp.ClientSession(args.url, connector=aiohttp.TCPConnector(limit=0))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []

    async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        pending = load.pending[index]
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = msg.data
            if '"heartbeat_ack"' in data:
                seq = json.loads(data)["seq"]
                sent_at = pending.pop(seq, None)
                if sent_at is not None:
                    load.ack(loop.time() - sent_at)
            elif '"error"' in data:
                load.error("ws:" + json.loads(data).get("code", "?"))

    gate = asyncio.Semaphore(64)

    async def connect(index: int) -> None:
        person_id = 100_000 + args.index * 100_000 + index
        room = ROOM_BASE + index % args.rooms
        claims = Claims(
            person_id,
            f"session:{room}",
            "learner",
            time.time() + 3600,
            {"name": f"b{person_id}", "iat": time.time()},
        )
        token = sign(plan["secret"], "room", claims)
        async with gate:
            ws = await sockets_session.ws_connect(
                f"/ws/sessions/{room}?token={token}", heartbeat=None, max_msg_size=0
            )
        sockets[index] = ws
        readers[index] = loop.create_task(read(index, ws))

    sockets = [None] * args.conns  # type: ignore[list-item]
    readers = [None] * args.conns  # type: ignore[list-item]
    load.pending = [{} for _ in range(args.conns)]
    await asyncio.gather(*(connect(i) for i in range(args.conns)))

    players: list[tuple[str, dict[str, str], str]] = []  # (client_id, headers, token)
    for headers in plan["learners"]:
        async with session.post(f"/api/replays/{plan['recording_id']}/playback", headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 201, body
        players.append((body["client_id"], headers, body["token"]))

    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # go
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = loop.time()
    ws_rate = args.ws_rate
    http_rate = args.http_rate
    ws_total = int(ws_rate * args.seconds)
    http_total = int(http_rate * args.seconds) if players else 0
    seqs = [0] * args.conns
    http_seqs = [0] * len(players)
    in_flight: set[asyncio.Task[None]] = set()

    async def post(player: int, seq: int, scheduled: float) -> None:
        client_id, headers, token = players[player]
        body = {
            "token": token,
            "seq": seq,
            "position_s": float(seq),
            "rate": 1.0,
            "visible": True,
            "angle": "camera",
        }
        try:
            async with session.post(
                f"/api/playback/{client_id}/heartbeats", json=body, headers=headers
            ) as resp:
                await resp.read()
                if resp.status == 200:
                    load.http_ok += 1
                    load.latencies.append(loop.time() - scheduled)
                else:
                    load.error(f"http:{resp.status}")
        except aiohttp.ClientError as exc:
            load.error(f"http:{type(exc).__name__}")

    n_ws = n_http = 0
    while n_ws < ws_total or n_http < http_total:
        elapsed = loop.time() - start
        due_ws = min(ws_total, int(elapsed * ws_rate) + 1)
        while n_ws < due_ws:
            i = n_ws % args.conns
            seqs[i] += 1
            load.pending[i][seqs[i]] = start + n_ws / ws_rate
            try:
                await sockets[i].send_str(f'{{"type":"heartbeat","seq":{seqs[i]},"visible":true}}')
                load.sent_ws += 1
            except ConnectionError:
                load.error("ws:send")
            n_ws += 1
        due_http = min(http_total, int(elapsed * http_rate) + 1) if http_total else 0
        while n_http < due_http:
            p = n_http % len(players)
            http_seqs[p] += 1
            task = loop.create_task(post(p, http_seqs[p], start + n_http / http_rate))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            load.sent_http += 1
            n_http += 1
        await asyncio.sleep(0.002)
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    load.sending = False
    if load.acked < load.sent_ws:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.all_acked.wait(), 60)  # acks still on their way
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    wall = loop.time() - start
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    await session.close()
    await sockets_session.close()
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    print(
        json.dumps(
            {
                "sent_ws": load.sent_ws,
                "sent_http": load.sent_http,
                "acked": load.acked,
                "http_ok": load.http_ok,
                "errors": load.errors,
                "cpu_s": cpu,
                "wall_s": wall,
                "latencies_ms": [round(x * 1000, 2) for x in load.latencies],
            }
        ),
        flush=True,
    )


# -- child: the baseline (an echo server) ---------------------------------------------------------------


def echo(args: argparse.Namespace) -> None:
    from aiohttp import WSMsgType, web

    async def channel(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "welcome"}))
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == "heartbeat":
                    await ws.send_str(json.dumps({"type": "heartbeat_ack", "seq": data["seq"]}))
        return ws

    async def open_playback(request: web.Request) -> web.Response:
        return web.json_response({"client_id": uuid.uuid4().hex, "token": "echo"}, status=201)

    async def heartbeat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"accepted": True, "seq": body["seq"], "check": None})

    app = web.Application()
    app.router.add_get(r"/ws/sessions/{session_id:\d+}", channel)
    app.router.add_post("/api/replays/{rec}/playback", open_playback)
    app.router.add_post("/api/playback/{client}/heartbeats", heartbeat)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


# -- parent ---------------------------------------------------------------------------------------------


def child(mode: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


async def count_rows(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM heartbeats"))
    finally:
        await conn.close()


def wait_healthy(url: str, timeout_s: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/playback/x/heartbeats", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a server starting, in a benchmark


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(
    name: str, args: argparse.Namespace, url: str, plan_path: Path, pg: str | None, server_pid: int
) -> dict[str, Any]:
    """Start the generators against `url`, let them send, collect their figures; with `pg`, wait until
    the heartbeats stop arriving in PostgreSQL."""
    gens = []
    http_clients = json.loads(plan_path.read_text())["learners"]
    for g in range(args.generators):
        mine = http_clients[g :: args.generators]
        sub_plan = plan_path.with_suffix(f".{name}.{g}.json")
        sub_plan.write_text(json.dumps({**json.loads(plan_path.read_text()), "learners": mine}))
        opts = ["--url", url, "--plan", str(sub_plan), "--index", str(g), "--seconds", str(args.seconds)]
        opts += [
            "--conns",
            str(args.conns // args.generators),
            "--rooms",
            str(max(1, args.rooms // args.generators)),
        ]
        opts += ["--ws-rate", str(args.rate * (1 - args.http_share) / args.generators)]
        opts += ["--http-rate", str(args.rate * args.http_share / args.generators if mine else 0)]
        gens.append(child("load", *opts))
    for p in gens:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", f"a generator failed to start: {line!r}"
    rows_before = asyncio.run(count_rows(pg)) if pg else 0
    server_cpu = cpu_s(server_pid)
    started = time.perf_counter()
    for p in gens:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    out: dict[str, Any] = {"sent": 0, "acked": 0, "errors": {}, "cpu_s": 0.0, "latencies": []}
    wall = 0.0
    for p in gens:
        assert p.stdout is not None
        result = json.loads(p.stdout.readline())
        p.wait()
        out["sent"] += result["sent_ws"] + result["sent_http"]
        out["acked"] += result["acked"] + result["http_ok"]
        out["cpu_s"] += result["cpu_s"]
        wall = max(wall, result["wall_s"])
        out["latencies"] += result["latencies_ms"]
        for k, v in result["errors"].items():
            out["errors"][k] = out["errors"].get(k, 0) + v
    done_at = time.perf_counter()
    committed = out["acked"]
    if pg:
        # Committed: every sent heartbeat a row, or nothing new for 10 s.
        last, last_change = -1, time.perf_counter()
        while time.perf_counter() - last_change < 10:
            committed = asyncio.run(count_rows(pg)) - rows_before
            if committed != last:
                last, last_change = committed, time.perf_counter()
            if committed >= out["sent"]:
                break
            time.sleep(0.05)  # polling a database from a benchmark, not a test
        done_at = last_change
    server_cpu = cpu_s(server_pid) - server_cpu
    lat = sorted(out["latencies"])
    out.update(
        server_us=1e6 * server_cpu / max(1, committed),
        committed=committed,
        s=done_at - started,
        per_s=committed / (done_at - started),
        p50=lat[len(lat) // 2] if lat else float("nan"),
        p99=lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        gen_cpu_pct=100 * out["cpu_s"] / wall if wall else 0.0,
    )
    del out["latencies"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10_000, help="offered heartbeats per second, in total")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--http-share", type=float, default=0.1, help="share of the rate sent over HTTP")
    parser.add_argument("--conns", type=int, default=2400, help="room-channel WebSockets (one learner each)")
    parser.add_argument("--rooms", type=int, default=48)
    parser.add_argument("--http-clients", type=int, default=160, help="replay players (one learner each)")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--plan")
    parser.add_argument("--port", type=int)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--ws-rate", type=float)
    parser.add_argument("--http-rate", type=float)
    args = parser.parse_args()
    if args.child == "load":
        asyncio.run(generate(args, json.loads(Path(args.plan).read_text())))
        return 0
    if args.child == "echo":
        echo(args)
        return 0
    if os.environ.get("BENCH_NETNS") != "1":
        # Loopback only, as the test suite: nothing of this benchmark can reach or be reached from outside.
        command = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} " + " ".join(
            f"'{a}'" for a in sys.argv[1:]
        )
        return subprocess.call(["unshare", "-n", "sh", "-c", command], env=dict(os.environ, BENCH_NETNS="1"))
    per_conn = args.rate * (1 - args.http_share) / args.conns
    per_player = args.rate * args.http_share / max(1, args.http_clients)
    if per_conn > 8 or per_player > 8:
        parser.error(
            f"{per_conn:.1f} heartbeats/s per socket, {per_player:.1f} per replay client: "
            "add --conns / --http-clients (the channel allows 10 frames/s, a replay client 20 per 2 s)"
        )

    from catalog.db import migrate
    from infra.settings import normalise_database_url
    from tests.server import TEST_SECRET_KEY, running_server

    workdir = Path(tempfile.mkdtemp(prefix="lectern-bench-attendance-"))
    os.chmod(workdir, 0o755)
    load_before = os.getloadavg()
    pg, redis_url = services(workdir)
    try:
        migrate(normalise_database_url(pg))
        plan = asyncio.run(seed(pg, args.http_clients if args.http_share > 0 else 0))
        plan["secret"] = TEST_SECRET_KEY
        plan_path = workdir / "plan.json"
        plan_path.write_text(json.dumps(plan))

        port = free_port()
        echo_server = child("echo", "--port", str(port))
        try:
            wait_healthy(f"http://127.0.0.1:{port}")
            baseline = drive("baseline", args, f"http://127.0.0.1:{port}", plan_path, None, echo_server.pid)
        finally:
            echo_server.terminate()
            echo_server.wait()

        env = {
            "DATABASE_URL": pg,
            "REDIS_URL": redis_url,
            "LECTERN_CREDIT_SETTLE_EVERY_S": "0",
        }
        with running_server(workdir / "lectern", env, start_timeout_s=60, stop_timeout_s=60) as server:
            import urllib.request

            request = urllib.request.Request(
                f"{server.url}/api/credit-policy",
                data=json.dumps(
                    {"heartbeat_period_s": POLICY_PERIOD_S, "note": "attendance benchmark"}
                ).encode(),
                headers={**plan["admin"], "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 201
            lectern = drive("lectern", args, server.url, plan_path, pg, server.process.pid)
    finally:
        stop_services(workdir)
    load_after = os.getloadavg()

    print(
        f"offered {args.rate:.0f} heartbeats/s for {args.seconds:.0f} s: {1 - args.http_share:.0%} on "
        f"{args.conns} room-channel sockets in {args.rooms} rooms, {args.http_share:.0%} from "
        f"{args.http_clients} replay clients over HTTP; {args.generators} generator processes; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; {os.cpu_count()} cores"
    )
    print(
        f"{'run':<40}{'sent':>8}{'acked':>8}{'stored':>9}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'app µs/beat':>13}{'gen cpu':>9}  errors"
    )
    rows = [
        ("baseline (echo server, nothing stored)", baseline),
        ("Lectern (channel/HTTP → PostgreSQL)", lectern),
    ]
    for label, r in rows:
        print(
            f"{label:<40}{r['sent']:>8}{r['acked']:>8}{r['committed']:>9}{r['per_s']:>8.0f}{r['p50']:>9.1f}"
            f"{r['p99']:>9.1f}{r['server_us']:>13.0f}"
            f"{r['gen_cpu_pct']:>8.0f}%  {r['errors'] or '-'}"
        )
    print(
        f"ratio Lectern/baseline: throughput {lectern['per_s'] / baseline['per_s']:.2f}, "
        f"p99 {lectern['p99'] / baseline['p99']:.2f}"
    )
    print(
        f"attendance heartbeats_per_s={lectern['per_s']:.0f} p99_ms={lectern['p99']:.1f} "
        f"lost={lectern['sent'] - lectern['committed']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
