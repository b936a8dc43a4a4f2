"""The bureau's supervision view on one credit year with 100,000 learners and 2,000,000 ledger entries.

    .venv/bin/python bench/report.py              # about 5 minutes on the 2-core build machine
    .venv/bin/python bench/report.py --keep       # leave the loaded cluster running (EXPLAIN afterwards)

Runs itself inside `unshare -n` (loopback only) and starts its own PostgreSQL with
scripts/services/postgres.sh in a temp dir. Loads, with COPY (asyncpg `copy_records_to_table`) into a
schema built by the migrations, a year in Qingdao: 1 HR bureau, 10 industry departments (one per sector),
200 providers (their sizes Zipf-distributed: the largest holds about a sixth of the year) in 10 sectors,
500 employers, 100,000 learners, 4,000 courses, 20,000 sessions (95 % held, 45–180 minutes), 800,000
enrolments, 2,000,000 ledger entries (reversals with their replacement included; 60 % registered, 25 %
pending, 10 % rejected, 5 % revoked), a decision row for each decided entry (approve/reject after a
lognormal delay, then the revocations), one live interval per attended entry (1.9 M: the evidence the
reconciliation reads), 20,000 fraud flags, and a few providers that claim more than happened (2 % of
sessions credit beyond their length, 1 % credit people who never attended). Then `VACUUM ANALYZE`.

Starts the real app (`python -m streaming`, tests/server.py's `running_server`) with the background
refresh off, and measures through HTTP, as the page calls it (a bureau and an industry department
logged in as a login writes its session row):
- the snapshot's computation (`POST /api/supervision/refresh`: one walk over the year, stored);
- each route the page calls, sequentially (c=1) and with 4 clients (c=4), `--requests` times each:
  the overview (`GET /api/supervision/providers`, the bureau; an industry department with its sector),
  a provider's sessions (random providers, the largest among them, pages, 超额 only), a session's
  entries (random sessions, live); next to `GET /healthz` (the framework's floor) and a trivial indexed
  query through the same stack (`GET /api/organizations/{id}`, one primary-key row) as baselines;
- the full year's XLSX export (`GET /api/supervision/export.xlsx`, streamed: time to the last byte, the
  server's RSS sampled every 20 ms during it, minus before), read back for its row count; the same for
  one small provider (RSS growth that does not follow the file's size: streamed); `lectern report` for the
  CSV in a child process (time, peak RSS); and the floor: the detail rows read by one asyncpg cursor.

Last line: `report supervision_p99_ms=<...> export_s=<...>` (p99 over every supervision route sample at
both concurrencies; the full-year XLSX download).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench.benchkit import cpu_s, free_port  # noqa: E402

SEED = 20261206
YEAR = 2026
SECTORS = (
    "建筑",
    "卫生健康",
    "交通运输",
    "教育",
    "农业农村",
    "工业和信息化",
    "财政金融",
    "海洋渔业",
    "文化旅游",
    "社会工作",
)
DEPTS = len(SECTORS)
PROVIDERS = 200
EMPLOYERS = 500
LEARNERS = 100_000
COURSES = 4_000
SESSIONS = 20_000
ENTRIES = 2_000_000
FLAGS = 20_000
BUREAU_ORG = 1
FIRST_DEPT = 2
FIRST_PROVIDER = FIRST_DEPT + DEPTS
FIRST_EMPLOYER = FIRST_PROVIDER + PROVIDERS
BUREAU_PERSON = LEARNERS + 1
DEPT_PERSON = LEARNERS + 2
YEAR_START = datetime(YEAR, 1, 1, tzinfo=UTC) - timedelta(hours=8)  # 00:00 in Beijing
STATUS_WEIGHTS = (("registered", 60), ("pending", 25), ("rejected", 10), ("revoked", 5))
FLAG_CODES = ("auto_confirm", "two_devices", "after_end", "double_claim", "too_fast", "daily_cap")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hwm_mb(pid: int) -> float:
    """A running process's peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def pct(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# -- the world --------------------------------------------------------------------------------------------


@dataclass
class World:
    provider_of_course: list[int] = field(default_factory=list)
    sessions_of_provider: dict[int, list[int]] = field(default_factory=dict)
    held_sessions: list[int] = field(default_factory=list)
    largest_provider: int = 0
    smallest_provider: int = 0
    entries: int = 0


def xueshi(minutes: float) -> Decimal:
    """R5 at the default policy: floor(minutes / 45) to 0.5."""
    return Decimal(math.floor(minutes / 45 / 0.5)) * Decimal("0.5")


async def load(url: str) -> World:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    world = World()
    conn = await asyncpg.connect(url)
    started = time.perf_counter()

    async def copy(table: str, columns: Sequence[str], records: Any) -> None:
        t = time.perf_counter()
        result = await conn.copy_records_to_table(table, records=records, columns=list(columns))
        print(f"  {table}: {result.split()[-1]} rows in {time.perf_counter() - t:.1f} s", flush=True)

    try:
        orgs = [(BUREAU_ORG, "hrss_bureau", "青岛市人力资源和社会保障局", None, now)]
        orgs += [(FIRST_DEPT + i, "industry_dept", f"{s}行业主管部门", s, now) for i, s in enumerate(SECTORS)]
        orgs += [
            (
                FIRST_PROVIDER + i,
                "ce_base" if i % 5 == 0 else "training_institution",
                f"青岛第{i + 1}继续教育培训中心",
                SECTORS[i % DEPTS],
                now,
            )
            for i in range(PROVIDERS)
        ]
        orgs += [
            (FIRST_EMPLOYER + i, "employer", f"青岛用人单位{i + 1}", None, now) for i in range(EMPLOYERS)
        ]
        await copy("organizations", ("id", "type", "name", "sector", "created_at"), orgs)

        employer_of = [FIRST_EMPLOYER + rng.randrange(EMPLOYERS) for _ in range(LEARNERS + 1)]
        people = (
            (pid, f"学员{pid}", f"139{pid:08d}", "x", employer_of[pid], now) for pid in range(1, LEARNERS + 1)
        )
        await copy(
            "persons", ("id", "name", "phone", "password_hash", "employer_org_id", "created_at"), people
        )
        await copy(
            "persons",
            ("id", "name", "phone", "password_hash", "employer_org_id", "created_at"),
            [(BUREAU_PERSON, "人社局监管员", "13800000001", "x", None, now),
             (DEPT_PERSON, "住建局监管员", "13800000002", "x", None, now)],
        )  # fmt: skip
        await copy(
            "role_assignments",
            ("person_id", "role", "org_id", "created_at"),
            [(BUREAU_PERSON, "bureau", BUREAU_ORG, now), (DEPT_PERSON, "bureau", FIRST_DEPT, now)],
        )

        # Providers' sizes: Zipf (weight 1/rank), so one platform holds about a sixth of the year.
        weights = [1 / (rank + 1) for rank in range(PROVIDERS)]
        providers = [FIRST_PROVIDER + i for i in range(PROVIDERS)]
        world.provider_of_course = [0, *rng.choices(providers, weights=weights, k=COURSES)]
        capacity = [None] + [rng.choice((None, None, None, 300, 500, 1000)) for _ in range(COURSES)]
        courses = [
            (cid, world.provider_of_course[cid], f"课程{cid}", "",
             "public" if cid % 3 == 0 else "professional",
             SECTORS[(world.provider_of_course[cid] - FIRST_PROVIDER) % DEPTS], "[]", Decimal(24), "live",
             "published", capacity[cid], now, now)
            for cid in range(1, COURSES + 1)
        ]  # fmt: skip
        await copy(
            "courses",
            ("id", "provider_org_id", "title", "description", "category", "industry", "specialty_tags",
             "credit_hours", "delivery", "status", "capacity", "created_at", "updated_at"),
            courses,
        )  # fmt: skip

        # Each course enrols a pool of learners; its sessions are attended by part of the pool.
        pools: list[list[int]] = [[]]
        for _cid in range(1, COURSES + 1):
            pools.append(rng.sample(range(1, LEARNERS + 1), rng.randint(60, 340)))
        enrollments = (
            (pid, cid, "employer" if pid % 3 else "self", "enrolled", YEAR_START)
            for cid in range(1, COURSES + 1)
            for pid in pools[cid]
        )
        await copy("enrollments", ("person_id", "course_id", "source", "status", "enrolled_at"), enrollments)

        course_of_session = [0] + [1 + (sid - 1) % COURSES for sid in range(1, SESSIONS + 1)]
        rng.shuffle(course_of_session)  # keeps index 0 somewhere: put a 0 back first
        course_of_session.remove(0)
        course_of_session.insert(0, 0)
        sessions = []
        window: dict[int, tuple[datetime, float] | None] = {}
        for sid in range(1, SESSIONS + 1):
            cid = course_of_session[sid]
            start = (
                YEAR_START + timedelta(days=rng.uniform(3, 355), hours=rng.choice((1, 2, 6, 7)))
            ).replace(second=0, microsecond=0)
            minutes = rng.choice((45, 60, 90, 90, 120, 180))
            held = rng.random() < 0.95
            end = start + timedelta(minutes=minutes)
            sessions.append(
                (sid, cid, f"第{sid}讲", "live", start, end, start if held else None, end if held else None,
                 "none", "{}")
            )  # fmt: skip
            window[sid] = (start, minutes) if held else None
            world.sessions_of_provider.setdefault(world.provider_of_course[cid], []).append(sid)
            if held:
                world.held_sessions.append(sid)
        await copy(
            "sessions",
            ("id", "course_id", "title", "kind", "scheduled_start", "scheduled_end", "actual_start",
             "actual_end", "external_platform", "external_ids"),
            sessions,
        )  # fmt: skip
        sizes = {p: len(s) for p, s in world.sessions_of_provider.items()}
        world.largest_provider = max(sizes, key=lambda p: sizes[p])
        world.smallest_provider = min(sizes, key=lambda p: sizes[p])

        # Entries: attendees of held sessions (scaled so the year holds ENTRIES rows with its reversals).
        held = [sid for sid in range(1, SESSIONS + 1) if window[sid] is not None]
        # A little more than enough (the draw is random): the loop stops at exactly ENTRIES rows.
        share = ENTRIES * 1.03 / sum(len(pools[course_of_session[s]]) for s in held)
        inflated = set(rng.sample(held, len(held) // 50))  # credit beyond the session's length
        phantom = set(rng.sample(held, len(held) // 100))  # credit to people never there
        entries: list[tuple[Any, ...]] = []
        intervals: list[tuple[Any, ...]] = []
        decisions: list[tuple[Any, ...]] = []
        statuses = [s for s, w in STATUS_WEIGHTS for _ in range(w)]
        next_id = 1

        def entry(sid: int, cid: int, pid: int, xs: Decimal, status: str, at: datetime, **more: Any) -> int:
            nonlocal next_id
            eid = next_id
            next_id += 1
            decided_at = more.get("decided_at")
            figures = {"present_s": float(xs * 2700), "window_s": float(xs * 2700), "ratio": 1.0}
            entries.append(
                (eid, pid, cid, sid, YEAR, (at + timedelta(hours=8)).date().isoformat(),
                 "public" if cid % 3 == 0 else "professional", more.get("kind", "live"), float(xs * 45), xs,
                 0, at, status, more.get("reversal_of"), more.get("note", ""),
                 json.dumps({"figures": figures}), BUREAU_PERSON if decided_at else None, decided_at)
            )  # fmt: skip
            return eid

        for sid in held:
            if next_id > ENTRIES:
                break
            cid = course_of_session[sid]
            start, minutes = window[sid]  # type: ignore[misc]
            end = start + timedelta(minutes=minutes)
            pool = pools[cid]
            attendees = rng.sample(
                pool, min(len(pool), max(1, round(len(pool) * share * rng.uniform(0.6, 1.4))))
            )
            allowed = xueshi(minutes)
            computed = end + timedelta(minutes=10)
            for n, pid in enumerate(attendees):
                if next_id > ENTRIES:
                    break
                xs = allowed + Decimal(2) if sid in inflated and n % 20 == 0 else allowed
                status = rng.choice(statuses)
                decided_at = None
                if status != "pending":
                    decided_at = computed + timedelta(
                        seconds=min(3e7, rng.lognormvariate(math.log(2 * 86400), 1.0))
                    )
                eid = entry(sid, cid, pid, xs, status, computed, decided_at=decided_at)
                if not (sid in phantom and n < 3):
                    intervals.append((sid, pid, f"peer-{eid}", start, end, "ended"))
                if decided_at is not None:
                    first = "reject" if status == "rejected" else "approve"
                    to = "rejected" if status == "rejected" else "registered"
                    decisions.append((eid, pid, first, "pending", to, "", BUREAU_PERSON, "employer_admin",
                                      employer_of[pid], None, decided_at))  # fmt: skip
                    if status == "revoked":
                        decisions.append((eid, pid, "revoke", "registered", "revoked", "核查后撤销",
                                          BUREAU_PERSON, "bureau", BUREAU_ORG, None,
                                          decided_at + timedelta(days=30)))  # fmt: skip
                elif n % 100 == 7 and next_id + 1 <= ENTRIES:
                    # A correction: the pending entry reversed, and written again.
                    entry(sid, cid, pid, -xs, "pending", computed + timedelta(hours=1), kind="reversal",
                          reversal_of=eid, note="重新结算")  # fmt: skip
                    entry(sid, cid, pid, xs, "pending", computed + timedelta(hours=1))
        world.entries = len(entries)
        await copy(
            "credit_entries",
            ("id", "person_id", "course_id", "session_id", "credit_year", "credit_day", "category", "kind",
             "minutes", "xueshi", "policy_version", "computed_at", "status", "reversal_of_id", "note",
             "evidence", "decided_by", "decided_at"),
            entries,
        )  # fmt: skip
        people_of_entries = [(e[3], e[1]) for e in entries[: FLAGS * 3 : 3]]
        entries.clear()
        await copy(
            "credit_decisions",
            ("entry_id", "person_id", "action", "from_status", "to_status", "reason", "decided_by",
             "decided_as", "org_id", "batch_id", "decided_at"),
            decisions,
        )  # fmt: skip
        decisions.clear()
        await copy(
            "live_intervals",
            ("session_id", "person_id", "peer_id", "joined_at", "left_at", "reason"),
            intervals,
        )
        intervals.clear()
        flags = [
            (pid, sid, course_of_session[sid], FLAG_CODES[n % len(FLAG_CODES)], f"session:{sid}", "warning",
             "{}", "open" if n % 3 else "dismissed", YEAR_START + timedelta(days=200), "")
            for n, (sid, pid) in enumerate(people_of_entries)
        ]  # fmt: skip
        await copy(
            "fraud_flags",
            ("person_id", "session_id", "course_id", "code", "subject", "severity", "evidence", "status",
             "created_at", "resolution"),
            flags,
        )  # fmt: skip
        for table in ("organizations", "persons", "courses", "sessions", "credit_entries"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        loaded = time.perf_counter() - started
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        print(f"loaded in {loaded:.0f} s; VACUUM ANALYZE {time.perf_counter() - t:.0f} s", flush=True)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"database size {size}", flush=True)
    finally:
        await conn.close()
    return world


async def world_of(url: str) -> World:
    """What the measurements need to know of a world loaded before."""
    conn = await asyncpg.connect(url)
    try:
        world = World()
        for provider, sid, held in await conn.fetch(
            "SELECT c.provider_org_id, s.id, s.actual_start IS NOT NULL FROM sessions s"
            " JOIN courses c ON c.id = s.course_id ORDER BY s.id"
        ):
            world.sessions_of_provider.setdefault(provider, []).append(sid)
            if held:
                world.held_sessions.append(sid)
        sizes = {p: len(s) for p, s in world.sessions_of_provider.items()}
        world.largest_provider = max(sizes, key=lambda p: sizes[p])
        world.smallest_provider = min(sizes, key=lambda p: sizes[p])
        world.entries = await conn.fetchval("SELECT count(*) FROM credit_entries")
        await conn.execute("DELETE FROM auth_sessions")
        return world
    finally:
        await conn.close()


async def login_rows(url: str, person_ids: Sequence[int]) -> dict[int, str]:
    """Server-side login sessions, exactly the rows catalog.accounts.login writes (cookie token hashed)."""
    now = datetime.now(UTC)
    tokens = {pid: secrets.token_urlsafe(32) for pid in person_ids}
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "auth_sessions",
            records=[
                (
                    hashlib.sha256(t.encode()).hexdigest(),
                    pid,
                    secrets.token_urlsafe(32),
                    now,
                    now + timedelta(hours=4),
                )
                for pid, t in tokens.items()
            ],
            columns=["token_hash", "person_id", "csrf_token", "created_at", "expires_at"],
        )
        csrf = {
            r["person_id"]: r["csrf_token"]
            for r in await conn.fetch("SELECT person_id, csrf_token FROM auth_sessions")
        }
    finally:
        await conn.close()
    return {pid: f"{tokens[pid]}|{csrf[pid]}" for pid in person_ids}


# -- measuring --------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    concurrency: int
    samples_ms: list[float]

    def line(self) -> str:
        s = self.samples_ms
        return (
            f"{self.name:<44} c={self.concurrency} n={len(s):<4} p50={pct(s, 50):7.1f} ms"
            f"  p90={pct(s, 90):7.1f} ms  p99={pct(s, 99):7.1f} ms  max={max(s):7.1f} ms"
        )


async def measure(name: str, calls: Sequence[Callable[[], Awaitable[None]]], concurrency: int) -> Result:
    samples: list[float] = []
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            call = queue.pop()
            t = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = Result(name, concurrency, samples)
    print(result.line(), flush=True)
    return result


async def run(url: str, world: World, args: argparse.Namespace) -> dict[str, float]:
    from tests.server import running_server

    rng = random.Random(SEED + 1)
    logins = await login_rows(url, [BUREAU_PERSON, DEPT_PERSON])
    data_dir = Path(tempfile.mkdtemp(prefix="lectern-bench-report-"))
    figures: dict[str, float] = {}
    env = {"DATABASE_URL": url, "LECTERN_LOG_LEVEL": "WARNING", "LECTERN_SUPERVISION_REFRESH_EVERY_S": "0",
           "LECTERN_CREDIT_SETTLE_EVERY_S": "0", "LECTERN_EXTERNAL_PULL_EVERY_S": "0"}  # fmt: skip
    try:
        with running_server(data_dir, env, start_timeout_s=60) as server:
            pid = server.process.pid
            print(
                f"server {server.url} (python -m streaming, pid {pid}), RSS {rss_mb(pid):.0f} MB", flush=True
            )
            timeout = aiohttp.ClientTimeout(total=600)
            async with aiohttp.ClientSession(server.url, timeout=timeout) as http:

                def headers(person: int) -> dict[str, str]:
                    token, csrf = logins[person].split("|")
                    return {"Cookie": f"lectern_session={token}", "X-CSRF-Token": csrf}

                bureau, dept = headers(BUREAU_PERSON), headers(DEPT_PERSON)

                async def fetch(path: str, who: dict[str, str]) -> bytes:
                    async with http.get(path, headers=who) as r:
                        body = await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"GET {path} -> {r.status}: {body[:300]!r}")
                        return body

                def get(path: str, who: dict[str, str] = bureau) -> Callable[[], Awaitable[None]]:
                    async def call() -> None:
                        await fetch(path, who)

                    return call

                print(
                    f"load average {os.getloadavg()[0]:.2f} (2 cores; other work on the machine)", flush=True
                )
                # The snapshot: one walk over the year, stored.
                rss0 = rss_mb(pid)
                t = time.perf_counter()
                async with http.post("/api/supervision/refresh", json={"year": YEAR}, headers=bureau) as r:
                    snap = await r.json()
                    assert r.status == 200, snap
                figures["refresh_s"] = time.perf_counter() - t
                print(
                    f"snapshot: {figures['refresh_s']:.1f} s over HTTP ({snap['snapshot']['took_s']:.1f} s"
                    f" walking {snap['snapshot']['entries']:,} entries);"
                    f" server RSS {rss0:.0f} -> {rss_mb(pid):.0f} MB",
                    flush=True,
                )
                overview = json.loads(await fetch(f"/api/supervision/providers?year={YEAR}", bureau))
                over = sum(p["over_sessions"] for p in overview["providers"])
                print(
                    f"overview: {len(overview['providers'])} providers, {over} sessions marked 超额,"
                    f" largest provider {world.largest_provider}"
                    f" ({len(world.sessions_of_provider[world.largest_provider])} sessions)",
                    flush=True,
                )

                n = args.requests
                providers = list(world.sessions_of_provider)

                def overviews(count: int) -> list[Callable[[], Awaitable[None]]]:
                    return [
                        get(f"/api/supervision/providers?year={YEAR}")
                        if i % 2
                        else get(f"/api/supervision/providers?year={YEAR}&sector={SECTORS[0]}", dept)
                        for i in range(count)
                    ]

                def session_lists(count: int) -> list[Callable[[], Awaitable[None]]]:
                    out = []
                    for i in range(count):
                        p = world.largest_provider if i % 5 == 0 else rng.choice(providers)
                        query = f"year={YEAR}&page={rng.choice((1, 1, 2, 3))}" + (
                            "&over=1" if i % 3 == 0 else ""
                        )
                        out.append(get(f"/api/supervision/providers/{p}/sessions?{query}"))
                    return out

                def entry_pages(count: int) -> list[Callable[[], Awaitable[None]]]:
                    return [
                        get(
                            f"/api/supervision/sessions/{rng.choice(world.held_sessions)}/entries?year={YEAR}"
                        )
                        for _ in range(count)
                    ]

                health = [get("/healthz") for _ in range(n)]
                org = [
                    get(f"/api/organizations/{rng.randrange(1, FIRST_EMPLOYER + EMPLOYERS)}")
                    for _ in range(n)
                ]
                await measure("warm-up", overviews(20) + session_lists(20) + entry_pages(20) + health[:20], 4)
                results = [
                    await measure("GET /healthz (floor)", health, 1),
                    await measure("GET /api/organizations/{id} (indexed row)", org, 1),
                    await measure("GET /api/supervision/providers", overviews(n), 1),
                    await measure("GET …/providers/{id}/sessions", session_lists(n), 1),
                    await measure("GET …/sessions/{id}/entries", entry_pages(n), 1),
                    await measure("GET /healthz (floor)", health, 4),
                    await measure("GET /api/organizations/{id} (indexed row)", org, 4),
                    await measure("GET /api/supervision/providers", overviews(2 * n), 4),
                    await measure("GET …/providers/{id}/sessions", session_lists(2 * n), 4),
                    await measure("GET …/sessions/{id}/entries", entry_pages(2 * n), 4),
                ]
                supervision = [
                    x for r in results if "supervision" in r.name or "…" in r.name for x in r.samples_ms
                ]
                floor = [
                    x
                    for r in results
                    if "organizations" in r.name and r.concurrency == 1
                    for x in r.samples_ms
                ]
                figures["supervision_p99_ms"] = pct(supervision, 99)
                figures["indexed_p50_ms"] = pct(floor, 50)
                by_route = {}
                for r in results:
                    if r.concurrency == 1:
                        by_route[r.name] = pct(r.samples_ms, 50)
                print(
                    "c=1 p50 as multiples of the indexed row: "
                    + ", ".join(
                        f"{k.split(' (')[0]} {v / figures['indexed_p50_ms']:.1f}x"
                        for k, v in by_route.items()
                    ),
                    flush=True,
                )

                # The export, streamed: the full year, then one small provider.
                for label, query in (
                    ("full year", f"year={YEAR}"),
                    ("one provider", f"year={YEAR}&provider={world.smallest_provider}"),
                ):
                    out = data_dir / f"export-{label.replace(' ', '-')}.xlsx"
                    peak = before = rss_mb(pid)
                    cpu0 = cpu_s(pid)
                    t = time.perf_counter()
                    first_byte = None
                    size = 0
                    async with http.get(f"/api/supervision/export.xlsx?{query}", headers=bureau) as r:
                        assert r.status == 200, await r.text()
                        with out.open("wb") as f:
                            sampled = time.perf_counter()
                            async for chunk in r.content.iter_chunked(1 << 20):
                                if first_byte is None:
                                    first_byte = time.perf_counter() - t
                                f.write(chunk)
                                size += len(chunk)
                                if time.perf_counter() - sampled > 0.02:
                                    peak, sampled = max(peak, rss_mb(pid)), time.perf_counter()
                    took = time.perf_counter() - t
                    cpu = cpu_s(pid) - cpu0
                    peak = max(peak, rss_mb(pid))
                    rows = count_rows(out)
                    print(
                        f"export.xlsx {label}: {took:.1f} s (first byte after {first_byte or 0:.2f} s),"
                        f" {size / 1e6:.0f} MB,"
                        f" {rows:,} detail rows; the server's CPU {cpu:.1f} s (all its threads); its RSS"
                        f" {before:.0f} MB before, peak {peak:.0f} MB (+{peak - before:.0f} MB)",
                        flush=True,
                    )
                    if label == "full year":
                        figures["export_s"] = took
                        figures["export_cpu_s"] = cpu
                        figures["export_rss_growth_mb"] = peak - before
                        figures["export_rows"] = rows
                    else:
                        figures["small_export_rss_growth_mb"] = peak - before
                    out.unlink()

            # `lectern report` (CSV) in a child process, its peak RSS read from /proc while it runs (after
            # exec: a forked child's own figure would start from this process's pages); the floor: the
            # detail rows through one cursor.
            out = data_dir / "report.csv"
            script = "import sys; from streaming.cli import main; sys.exit(main(sys.argv[1:]))"
            env = dict(
                os.environ, DATABASE_URL=url, LECTERN_LOG_LEVEL="WARNING", LECTERN_DATA_DIR=str(data_dir)
            )
            t = time.perf_counter()
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, "report", "--year", str(YEAR), "--out", str(out),
                cwd=REPO, env=env, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            cli_peak = 0.0
            while child.returncode is None:
                cli_peak = max(cli_peak, hwm_mb(child.pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), 0.05)
            if child.returncode != 0:
                raise RuntimeError("lectern report failed")
            figures["cli_csv_s"] = time.perf_counter() - t
            print(
                f"lectern report (csv): {figures['cli_csv_s']:.1f} s, {out.stat().st_size / 1e6:.0f} MB,"
                f" peak RSS {cli_peak:.0f} MB",
                flush=True,
            )
            figures["floor_s"] = await floor_read(url)
            print(
                f"floor: the year's detail rows through one asyncpg cursor {figures['floor_s']:.1f} s",
                flush=True,
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def count_rows(path: Path) -> int:
    """Detail rows in a streamed export: <row> elements of its 学时明细 sheets (read as a stream), less
    each sheet's header."""
    import re

    rows = 0
    with zipfile.ZipFile(path) as z:
        workbook = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        target = dict(re.findall(r'Id="(rId\d+)"[^>]*Target="([^"]+)"', rels))
        for name, rid in re.findall(r'<sheet name="([^"]+)"[^>]*r:id="(rId\d+)"', workbook):
            if not name.startswith("学时明细"):
                continue
            with z.open(f"xl/{target[rid]}") as f:
                tail = b""
                while chunk := f.read(1 << 20):
                    rows += (tail + chunk).count(b"<row>") - tail.count(b"<row>")
                    tail = chunk[-4:]
            rows -= 1
    return rows


async def floor_read(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        t = time.perf_counter()
        async with conn.transaction():
            n = 0
            async for _row in conn.cursor(
                "SELECT e.id, e.person_id, e.course_id, e.session_id, e.kind, e.category, e.minutes,"
                " e.xueshi, e.status, e.policy_version, e.computed_at, e.decided_at, e.reversal_of_id,"
                " e.note, p.name, p.phone FROM credit_entries e LEFT JOIN persons p ON p.id = e.person_id"
                " WHERE e.credit_year = $1",
                YEAR,
                prefetch=5000,
            ):
                n += 1
        return time.perf_counter() - t
    finally:
        await conn.close()


def throwaway_postgres(workdir: Path) -> str:
    out = subprocess.run(
        ["bash", "scripts/services/postgres.sh", "start", str(workdir / "pg"), str(free_port())],
        check=True, capture_output=True, text=True, cwd=REPO,
    ).stdout  # fmt: skip
    return out.strip().split("=", 1)[1]


def last_line(figures: dict[str, float]) -> int:
    print(f"report supervision_p99_ms={figures['supervision_p99_ms']:.1f} export_s={figures['export_s']:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="sequential requests per route (c=4: twice)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the loaded cluster running")
    parser.add_argument("--url", default="", help="a cluster this script loaded before (--keep): no load")
    args = parser.parse_args()
    if os.environ.get("BENCH_NETNS") != "1":
        command = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} " + " ".join(
            f"'{a}'" for a in sys.argv[1:]
        )
        return subprocess.call(["unshare", "-n", "sh", "-c", command], env=dict(os.environ, BENCH_NETNS="1"))
    from catalog.db import migrate
    from infra.settings import normalise_database_url

    started = time.perf_counter()
    if args.url:
        world = asyncio.run(world_of(args.url))
        figures = asyncio.run(run(args.url, world, args))
        return last_line(figures)
    workdir = Path(tempfile.mkdtemp(prefix="lectern-bench-report-pg-"))
    url = throwaway_postgres(workdir)
    try:
        migrate(normalise_database_url(url))
        print(f"migrated ({url})", flush=True)
        world = asyncio.run(load(url))
        print(f"{world.entries:,} ledger entries", flush=True)
        figures = asyncio.run(run(url, world, args))
    finally:
        if args.keep:
            print(f"cluster kept: {url} (stop: bash scripts/services/postgres.sh stop {workdir / 'pg'})")
        else:
            subprocess.run(
                ["bash", "scripts/services/postgres.sh", "stop", str(workdir / "pg")], cwd=REPO, check=False
            )
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"total {time.perf_counter() - started:.0f} s; this process's peak RSS {peak_rss_mb():.0f} MB;"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    return last_line(figures)


if __name__ == "__main__":
    raise SystemExit(main())
