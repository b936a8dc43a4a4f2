"""Attendance evidence ingestion: heartbeats from the live path to rows committed in PostgreSQL.

    .venv/bin/python bench/attendance.py [--rate 12000] [--seconds 10] [--producers 2]

Runs itself inside `unshare -n` (loopback only) and starts its own PostgreSQL and Redis with
scripts/services/*.sh in a temp dir. Producer processes (the server's side of the live path: an `Outbox`
with its journal on disk, group-committed, in front of a `RedisBus` that keeps the evidence topic until
the `catalog` group acknowledged it) emit `playback.heartbeat` events at a fixed offered rate (open
loop: latency is measured from each heartbeat's scheduled time, so a stall is not hidden); one consumer
process runs the catalog's real `EventConsumer`, which commits them to the `heartbeats` table in
batches. Two runs, same load: the baseline with the outbox's fsync off, then Lectern as shipped.

Measured: committed heartbeats per second (rows in PostgreSQL over the time from the first send to the
last commit), the p99 of the time a request handler waits for `publish` (durable on disk), and
lost = sent − committed. The HTTP front (`POST /api/playback/{client}/heartbeats`, the room channel) is
not in this figure yet: see docs/performance.md.

Last line: `attendance heartbeats_per_s=<...> p99_ms=<...> lost=<sent-committed>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.benchkit import free_port  # noqa: E402


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
    subprocess.run(
        ["bash", "scripts/services/postgres.sh", "stop", str(workdir / "pg")], cwd=REPO, check=False
    )
    subprocess.run(
        ["bash", "scripts/services/redis.sh", "stop", str(workdir / "redis")], cwd=REPO, check=False
    )


# -- child: producer ---------------------------------------------------------------------------------


async def produce(args: argparse.Namespace) -> None:
    from infra import events
    from infra.bus_redis import RedisBus
    from infra.outbox import Outbox, OutboxConfig

    bus = RedisBus(args.redis, retention=100_000, protected_group="catalog")
    outbox = await Outbox.open(bus, OutboxConfig(directory=Path(args.dir), drain_batch=1000))
    if args.nosync:
        outbox._append = _append_without_fsync(outbox)  # type: ignore[method-assign]  # the baseline
    outbox.start()
    rate = args.rate
    learners = args.learners
    seqs = [0] * learners
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def beat(learner: int, scheduled: float) -> None:
        seqs[learner] += 1
        event = events.PlaybackHeartbeat(
            client_id=f"bench-{args.index}-{learner}",
            person_id=learner + 1,
            recording_id="bench-recording",
            seq=seqs[learner],
            at=datetime.now(UTC),
            position_s=float(seqs[learner]),
            rate=1.0,
            visible=True,
            angle="camera",
        )
        await events.publish(outbox, event)
        latencies.append(loop.time() - scheduled)

    print("ready", flush=True)
    sys.stdin.readline()  # go
    start = loop.time()
    sent = 0
    tick_s = 0.005
    total = int(rate * args.seconds)
    learner = 0
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due:
            scheduled = start + sent / rate
            task = loop.create_task(beat(learner, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
            learner = (learner + 1) % learners
            sent += 1
        await asyncio.sleep(tick_s)
    while pending:
        await asyncio.gather(*list(pending))
    await outbox.close(timeout_s=60)
    await bus.close()
    latencies.sort()
    print(json.dumps({"sent": sent, "latencies_ms": [round(x * 1000, 3) for x in latencies]}), flush=True)


def _append_without_fsync(outbox: Any) -> Any:
    original = outbox._append

    def append(line: bytes, sync: bool) -> None:
        original(line, False)

    return append


# -- child: the catalog's consumer -------------------------------------------------------------------


async def consume(args: argparse.Namespace) -> None:
    from catalog.consumer import EventConsumer
    from catalog.db import Database
    from infra.bus_redis import RedisBus
    from infra.settings import normalise_database_url

    bus = RedisBus(args.redis, retention=100_000, protected_group="catalog")
    db = Database(normalise_database_url(args.database))
    consumer = EventConsumer(bus, db, "bench-consumer", block_s=0.2)
    task = asyncio.create_task(consumer.run())
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # stop
    consumer.stop()
    await task
    await bus.close()
    await db.close()


# -- parent ------------------------------------------------------------------------------------------


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


async def reset(url: str, redis_url: str) -> None:
    import asyncpg
    import redis.asyncio as redis

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE heartbeats")
    finally:
        await conn.close()
    r = redis.Redis.from_url(redis_url)
    await r.flushdb()
    await r.aclose()


def run_once(name: str, args: argparse.Namespace, pg: str, redis_url: str, workdir: Path) -> dict[str, float]:
    asyncio.run(reset(pg, redis_url))
    consumer = child("consume", "--database", pg, "--redis", redis_url)
    assert consumer.stdout is not None
    assert consumer.stdin is not None
    consumer.stdout.readline()
    per = args.rate / args.producers
    producers = []
    for i in range(args.producers):
        opts = ["--redis", redis_url, "--dir", str(workdir / f"outbox-{name}-{i}"), "--index", str(i)]
        opts += [
            "--rate",
            str(per),
            "--seconds",
            str(args.seconds),
            "--learners",
            str(args.learners // args.producers),
        ]
        producers.append(child("produce", *opts, *(["--nosync"] if name == "baseline" else [])))
    for p in producers:
        assert p.stdout is not None
        p.stdout.readline()
    started = time.perf_counter()
    for p in producers:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    sent = 0
    latencies: list[float] = []
    for p in producers:
        assert p.stdout is not None
        result = json.loads(p.stdout.readline())
        sent += result["sent"]
        latencies += result["latencies_ms"]
        p.wait()
    # Committed: wait until every sent heartbeat is a row, or nothing moved for 10 s.
    committed, last_change, last = 0, time.perf_counter(), -1
    while committed < sent and time.perf_counter() - last_change < 10:
        committed = asyncio.run(count_rows(pg))
        if committed != last:
            last, last_change = committed, time.perf_counter()
        time.sleep(0.05)  # polling a database from a benchmark, not a test
    elapsed = last_change - started
    consumer.stdin.write("stop\n")
    consumer.stdin.flush()
    consumer.wait(timeout=60)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "sent": sent,
        "committed": committed,
        "per_s": committed / elapsed,
        "p50": p50,
        "p99": p99,
        "s": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=12_000, help="offered heartbeats per second, in total")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--child")
    parser.add_argument("--redis")
    parser.add_argument("--database")
    parser.add_argument("--dir")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--nosync", action="store_true")
    args = parser.parse_args()
    if args.child == "produce":
        asyncio.run(produce(args))
        return 0
    if args.child == "consume":
        asyncio.run(consume(args))
        return 0
    if os.environ.get("BENCH_NETNS") != "1":
        # Loopback only, as the test suite: nothing of this benchmark can reach or be reached from outside.
        command = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} " + " ".join(
            f"'{a}'" for a in sys.argv[1:]
        )
        env = dict(os.environ, BENCH_NETNS="1")
        return subprocess.call(["unshare", "-n", "sh", "-c", command], env=env)

    from catalog.db import migrate
    from infra.settings import normalise_database_url

    workdir = Path(tempfile.mkdtemp(prefix="lectern-bench-attendance-"))
    os.chmod(workdir, 0o755)
    pg, redis_url = services(workdir)
    try:
        migrate(normalise_database_url(pg))
        runs = {name: run_once(name, args, pg, redis_url, workdir) for name in ("baseline", "lectern")}
    finally:
        stop_services(workdir)
    print(
        f"offered {args.rate:.0f} heartbeats/s for {args.seconds:.0f} s "
        f"from {args.producers} producer processes"
    )
    print(f"{'run':<34}{'sent':>8}{'committed':>11}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    labels = {"baseline": "baseline (outbox without fsync)", "lectern": "Lectern (group-committed fsync)"}
    for name, r in runs.items():
        print(
            f"{labels[name]:<34}{r['sent']:>8.0f}{r['committed']:>11.0f}{r['per_s']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
        )
    lec, base = runs["lectern"], runs["baseline"]
    print(
        f"ratio lectern/baseline: throughput {lec['per_s'] / base['per_s']:.2f}, "
        f"p99 {lec['p99'] / base['p99']:.2f}"
    )
    print(
        f"attendance heartbeats_per_s={lec['per_s']:.0f} p99_ms={lec['p99']:.1f} "
        f"lost={lec['sent'] - lec['committed']:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
