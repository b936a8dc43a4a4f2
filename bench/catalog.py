"""Catalog benchmark: 100,000 courses and 1,000,000 enrollments in PostgreSQL, measured through the API.

    .venv/bin/python bench/catalog.py            # starts and stops a throwaway PostgreSQL cluster (root)
    BENCH_POSTGRES_URL=postgresql://u@host:5432/db .venv/bin/python bench/catalog.py

Loads the world with COPY (asyncpg `copy_records_to_table`) into a schema built by the migrations, starts
`python -m streaming` against it, logs a learner in through the API, then times course search and
"my learning" over HTTP, sequentially and with a few concurrent clients, next to GET /healthz through the
same server as the framework's floor. The last line is machine-readable:
    catalog search_p99_ms=<...> my_learning_p99_ms=<...>
The database named by BENCH_POSTGRES_URL is wiped (its catalog tables are dropped and rebuilt).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import asyncpg
from argon2 import PasswordHasher

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: reuse the test harness's server runner

from catalog.db import migrate  # noqa: E402
from infra.settings import normalise_database_url  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.server import running_server  # noqa: E402

COURSES = 100_000
LEARNERS = 10_000
ENROLLMENTS = 1_000_000
PROVIDERS = 40
EMPLOYERS = 60
PASSWORD = "bench-password-2026"
SEED = 20260101

# --- a realistic vocabulary -----------------------------------------------------------------------------
# Topics are drawn Zipf-like (weight 1/rank): the head words ("安全生产") match thousands of courses,
# the tail words a few hundred, as in a real catalog where some subjects dominate.
TOPICS = (
    "安全生产",
    "职业道德",
    "人工智能",
    "数字经济",
    "专业技术",
    "质量管理",
    "法律法规",
    "绿色低碳",
    "应急管理",
    "信息安全",
    "建筑施工",
    "工程造价",
    "财务会计",
    "临床医学",
    "护理",
    "药学",
    "港口",
    "航运",
    "物流",
    "电力",
    "新能源",
    "化工",
    "环境保护",
    "水利",
    "交通运输",
    "城市规划",
    "海洋",
    "渔业",
    "农业",
    "食品安全",
    "机械制造",
    "自动化",
    "智能制造",
    "集成电路",
    "软件工程",
    "大数据",
    "云计算",
    "区块链",
    "物联网",
    "网络安全",
    "税务",
    "审计",
    "统计",
    "金融",
    "保险",
    "档案",
    "测绘",
    "气象",
    "地质",
    "林业",
    "园林",
    "教育",
    "心理健康",
    "公共卫生",
    "中医",
    "康复",
    "检验",
    "影像",
    "口腔",
    "儿科",
    "急救",
    "消防",
    "特种设备",
    "起重",
    "焊接",
    "电梯",
    "锅炉",
    "压力容器",
    "危险化学品",
    "职业健康",
    "知识产权",
    "标准化",
    "计量",
    "检验检测",
    "招标投标",
    "合同管理",
    "项目管理",
    "供应链",
    "跨境电商",
    "乡村振兴",
    "文化旅游",
    "非物质文化遗产",
    "社会工作",
    "养老服务",
    "家政",
    "轨道交通",
    "桥梁",
    "隧道",
    "市政工程",
    "装配式建筑",
    "建筑节能",
    "给排水",
    "暖通",
    "造船",
    "海洋工程",
    "船舶检验",
)
PREFIXES = ("", "", "", "新时代", "智慧", "数字化", "现代", "青岛市", "山东省", "实用", "高质量发展与")
ASPECTS = (
    "管理",
    "实务",
    "技术",
    "新进展",
    "法规解读",
    "风险防控",
    "标准规范",
    "案例分析",
    "创新应用",
    "能力提升",
    "前沿",
    "基础",
)
SUFFIXES = ("", "", "专题研修", "高级研修班", "培训", "讲座", "（第一期）", "（第二期）", "实训", "专题")
INDUSTRIES = (
    "综合",
    "建筑",
    "卫生健康",
    "交通运输",
    "教育",
    "农业农村",
    "工业和信息化",
    "财政金融",
    "海洋渔业",
    "文化旅游",
)
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌宁博鑫宇浩然子涵欣怡梓轩思远雨萱"

# Terms the searches use: tail topics that match a few hundred courses, plus some head ones and
# compound words; the run prints how many published courses each matches.
SEARCH_TERMS = (
    "港口",
    "船舶检验",
    "焊接",
    "口腔",
    "隧道",
    "养老服务",
    "档案",
    "区块链",
    "检验检测",
    "桥梁",
    "暖通",
    "消防",
    "安全生产",
    "人工智能",
    "案例分析",
    "法规解读",
)


def zipf_weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(n)]


def course_title(rng: random.Random, topic: str) -> str:
    return f"{rng.choice(PREFIXES)}{topic}{rng.choice(ASPECTS)}{rng.choice(SUFFIXES)}"


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


# --- PostgreSQL ------------------------------------------------------------------------------------------


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private cluster in a temp dir on a free port (scripts/services/postgres.sh), stopped at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="lectern-bench-pg-"))
    script = REPO / "scripts" / "services" / "postgres.sh"
    port = free_port()
    out = subprocess.run(
        ["bash", str(script), "start", str(workdir / "pg"), str(port)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    url = out.strip().split("=", 1)[1]
    try:
        yield url
    finally:
        subprocess.run(["bash", str(script), "stop", str(workdir / "pg")], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


async def reset_schema(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@dataclass
class World:
    learner_ids: list[int]
    learner_phones: list[str]
    published_course_ids: list[int]


async def load(url: str, rng: random.Random) -> World:
    """Bulk-load organizations, people, courses, sessions and enrollments with COPY, then ANALYZE."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        orgs = [(1, "hrss_bureau", "青岛市人力资源和社会保障局", None, "370200", None, now)]
        for i in range(PROVIDERS):
            kind = "ce_base" if i % 4 == 0 else "training_institution"
            orgs.append((2 + i, kind, f"青岛第{i + 1}继续教育培训中心", None, "370200", 1, now))
        employer_ids = list(range(2 + PROVIDERS, 2 + PROVIDERS + EMPLOYERS))
        orgs += [(oid, "employer", f"青岛用人单位{oid}", None, "370200", None, now) for oid in employer_ids]
        await conn.copy_records_to_table(
            "organizations",
            records=orgs,
            columns=[
                "id",
                "type",
                "name",
                "unified_social_credit_code",
                "region_code",
                "parent_id",
                "created_at",
            ],
        )
        # One argon2 hash for everyone: hashing 10,000 passwords would take minutes and prove nothing.
        password_hash = PasswordHasher().hash(PASSWORD)
        phones = [f"139{n:08d}" for n in range(LEARNERS)]
        people = [
            (pid, person_name(rng), phones[pid - 1], password_hash, rng.choice(employer_ids), None, now)
            for pid in range(1, LEARNERS + 1)
        ]
        await conn.copy_records_to_table(
            "persons",
            records=people,
            columns=["id", "name", "phone", "password_hash", "employer_org_id", "id_card_hash", "created_at"],
        )
        await conn.copy_records_to_table(
            "role_assignments",
            records=[(pid, "learner", emp, now) for pid, _, _, _, emp, _, _ in people],
            columns=["person_id", "role", "org_id", "created_at"],
        )
        weights = zipf_weights(len(TOPICS))
        topics = rng.choices(TOPICS, weights=weights, k=COURSES)
        courses = []
        published: list[int] = []
        for cid in range(1, COURSES + 1):
            topic = topics[cid - 1]
            title = course_title(rng, topic)
            roll = rng.random()
            status = "published" if roll < 0.95 else ("draft" if roll < 0.98 else "archived")
            if status == "published":
                published.append(cid)
            created = now - timedelta(days=rng.uniform(0, 730))
            courses.append(
                (
                    cid,
                    rng.randrange(2, 2 + PROVIDERS),
                    title,
                    f"本课程围绕{topic}，系统讲解{rng.choice(ASPECTS)}要点，结合{rng.choice(INDUSTRIES)}行业典型案例。",
                    "public" if rng.random() < 0.3 else "professional",
                    rng.choice(INDUSTRIES),
                    json.dumps([topic], ensure_ascii=False),
                    Decimal(rng.choice(("2.0", "4.0", "6.0", "8.0", "12.0"))),
                    rng.choice(("live", "live", "recorded", "recorded", "external", "offline")),
                    status,
                    None if rng.random() < 0.5 else rng.choice((50, 100, 200, 500)),
                    created,
                    created,
                )
            )
        await conn.copy_records_to_table(
            "courses",
            records=courses,
            columns=[
                "id",
                "provider_org_id",
                "title",
                "description",
                "category",
                "industry",
                "specialty_tags",
                "credit_hours",
                "delivery",
                "status",
                "capacity",
                "created_at",
                "updated_at",
            ],
        )
        sessions = []
        for cid in range(1, COURSES + 1):
            first = now + timedelta(days=rng.uniform(-365, 180))
            for n in range(rng.choice((1, 1, 2, 3))):
                start = (first + timedelta(days=7 * n)).replace(second=0, microsecond=0)
                kind = rng.choice(("live", "live", "offline"))
                sessions.append((cid, f"第{n + 1}讲", kind, start, start + timedelta(hours=2), "none", "{}"))
        await conn.copy_records_to_table(
            "sessions",
            records=sessions,
            columns=[
                "course_id",
                "title",
                "kind",
                "scheduled_start",
                "scheduled_end",
                "external_platform",
                "external_ids",
            ],
        )
        per_learner = ENROLLMENTS // LEARNERS

        def enrollment_rows() -> Iterator[tuple[object, ...]]:
            for pid in range(1, LEARNERS + 1):
                for cid in rng.sample(published, per_learner):
                    at = now - timedelta(days=rng.uniform(0, 365))
                    if rng.random() < 0.05:
                        yield (pid, cid, "self", "withdrawn", at, at + timedelta(days=1))
                    else:
                        yield (pid, cid, rng.choice(("self", "employer")), "enrolled", at, None)

        await conn.copy_records_to_table(
            "enrollments",
            records=enrollment_rows(),
            columns=["person_id", "course_id", "source", "status", "enrolled_at", "withdrawn_at"],
        )
        # Explicit ids were copied in: move the sequences past them, or the server's inserts collide.
        for table in ("organizations", "persons", "courses"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        loaded_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        await conn.execute("ANALYZE")
        print(
            f"loaded {len(orgs)} organizations, {LEARNERS} learners, {COURSES} courses,"
            f" {len(sessions)} sessions, {ENROLLMENTS} enrollments in {loaded_s:.1f} s;"
            f" ANALYZE {time.perf_counter() - t1:.1f} s",
            flush=True,
        )
    finally:
        await conn.close()
    return World(list(range(1, LEARNERS + 1)), phones, published)


async def open_sessions(url: str, person_ids: Sequence[int]) -> dict[int, str]:
    """Server-side login sessions for many learners at once (one argon2 login each would take minutes).

    The rows are exactly what catalog.accounts.login writes: the SHA-256 of a random cookie token.
    """
    now = datetime.now(UTC)
    tokens = {pid: secrets.token_urlsafe(32) for pid in person_ids}
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "auth_sessions",
            records=[
                (
                    hashlib.sha256(tok.encode()).hexdigest(),
                    pid,
                    secrets.token_urlsafe(32),
                    now,
                    now + timedelta(hours=2),
                )
                for pid, tok in tokens.items()
            ],
            columns=["token_hash", "person_id", "csrf_token", "created_at", "expires_at"],
        )
        await conn.execute("ANALYZE auth_sessions")
    finally:
        await conn.close()
    return tokens


async def matches(url: str, terms: Sequence[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        out = {}
        for term in terms:
            out[term] = await conn.fetchval(
                "SELECT count(*) FROM courses WHERE status = 'published' AND title LIKE $1", f"%{term}%"
            )
        return out
    finally:
        await conn.close()


# --- measuring -------------------------------------------------------------------------------------------


def pct(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass
class Result:
    name: str
    concurrency: int
    samples_ms: list[float]
    paths: list[str]  # the request of each sample, for the breakdown of the slowest

    def line(self) -> str:
        s = self.samples_ms
        return (
            f"{self.name:<28} c={self.concurrency:<2} n={len(s):<5} p50={pct(s, 50):7.1f} ms"
            f"  p90={pct(s, 90):7.1f} ms  p99={pct(s, 99):7.1f} ms  max={max(s):7.1f} ms"
            f"  mean={statistics.fmean(s):6.1f} ms"
        )


@dataclass
class Request:
    path: str
    call: Callable[[], Awaitable[None]]


async def measure(name: str, requests: Sequence[Request], concurrency: int) -> Result:
    samples: list[float] = []
    paths: list[str] = []
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            request = queue.pop()
            t = time.perf_counter()
            await request.call()
            samples.append((time.perf_counter() - t) * 1000)
            paths.append(request.path)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = Result(name, concurrency, samples, paths)
    print(result.line(), flush=True)
    return result


BROAD_TERMS = frozenset(("安全生产", "人工智能", "案例分析", "法规解读"))  # each matches thousands


def search_kind(path: str) -> str:
    """`broad|narrow sort [filtered] [page>1]` of a search request, for the breakdown."""
    query = dict(parse_qsl(urlsplit(path).query))
    kind = "broad" if query.get("q") in BROAD_TERMS else "narrow"
    filtered = " filtered" if "category" in query or "delivery" in query else ""
    paged = " page>1" if "page" in query else ""
    return f"{kind} {query.get('sort')}{filtered}{paged}"


def print_slowest(result: Result, share: float = 0.02) -> None:
    """Which kinds of search the slowest `share` of the samples were, next to how common each kind is."""
    ranked = sorted(zip(result.samples_ms, result.paths, strict=True), reverse=True)
    slowest = ranked[: max(1, round(len(ranked) * share))]
    overall = Counter(search_kind(path) for _, path in ranked)
    tail = Counter(search_kind(path) for _, path in slowest)
    print(f"  slowest {len(slowest)} of {result.name} c={result.concurrency} (of all):", flush=True)
    for kind, count in tail.most_common():
        print(f"    {count:3d} ({overall[kind]:3d}) {kind}", flush=True)


async def run_http(
    base: str, world: World, tokens: dict[int, str], rng: random.Random, n: int
) -> dict[str, float]:
    async with aiohttp.ClientSession(base) as http:

        def get(path: str, cookie: str | None = None) -> Request:
            headers = {"Cookie": f"lectern_session={cookie}"} if cookie else {}

            async def call() -> None:
                async with http.get(path, headers=headers) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"GET {path} -> {r.status}: {body[:300]!r}")

            return Request(path, call)

        # One learner logs in through the API, like a browser would: the path under test is real.
        phone = world.learner_phones[0]
        async with http.post("/api/auth/login", json={"phone": phone, "password": PASSWORD}) as r:
            if r.status != 200:
                raise RuntimeError(f"login failed: {r.status} {await r.text()}")
            cookie = r.cookies["lectern_session"].value
        async with http.get("/api/me/learning", headers={"Cookie": f"lectern_session={cookie}"}) as r:
            mine = await r.json()
        print(
            f"learner {phone} logged in through the API; {mine['total']} active enrollments"
            f" ({len(mine['items'])} on the first page)",
            flush=True,
        )
        tokens = {**tokens, world.learner_ids[0]: cookie}

        def searches(count: int) -> list[Request]:
            out = []
            for _ in range(count):
                q: dict[str, str] = {"q": rng.choice(SEARCH_TERMS)}
                if rng.random() < 0.4:
                    q["category"] = rng.choice(("public", "professional"))
                if rng.random() < 0.3:
                    q["delivery"] = rng.choice(("live", "recorded", "external", "offline"))
                q["sort"] = rng.choice(
                    ("-created_at", "-created_at", "title", "credit_hours", "next_session")
                )
                if rng.random() < 0.2:
                    q["page"] = str(rng.randint(2, 5))
                out.append(get("/api/courses?" + "&".join(f"{k}={quote(v)}" for k, v in q.items())))
            return out

        learners = list(tokens.values())

        def learning(count: int) -> list[Request]:
            return [get("/api/me/learning", rng.choice(learners)) for _ in range(count)]

        health = [get("/healthz") for _ in range(n)]
        browse = [get("/api/courses?sort=-created_at") for _ in range(n // 2)]
        # Warm up: connection pools, plan caches, the OS page cache.
        await measure("warm-up", searches(40) + learning(40) + health[:40], 4)
        results = [
            await measure("GET /healthz (floor)", health, 1),
            await measure("GET /api/courses (no q)", browse, 1),
            await measure("GET /api/courses?q=…", searches(n), 1),
            await measure("GET /api/me/learning", learning(n), 1),
            await measure("GET /healthz (floor)", health, 8),
            await measure("GET /api/courses?q=…", searches(2 * n), 8),
            await measure("GET /api/me/learning", learning(2 * n), 8),
        ]
    for result in results:
        if result.name.startswith("GET /api/courses?q"):
            print_slowest(result)
    search = [x for r in results if r.name.startswith("GET /api/courses?q") for x in r.samples_ms]
    mine_ms = [x for r in results if r.name.startswith("GET /api/me/learning") for x in r.samples_ms]
    return {"search_p99_ms": pct(search, 99), "my_learning_p99_ms": pct(mine_ms, 99)}


async def bench(url: str, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(SEED)
    await reset_schema(url)
    t = time.perf_counter()
    await asyncio.to_thread(migrate, normalise_database_url(url))
    print(f"migrated in {time.perf_counter() - t:.1f} s", flush=True)
    world = await load(url, rng)
    counts = await matches(url, SEARCH_TERMS)
    print("published courses whose title holds each search term:", flush=True)
    print("  " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    tokens = await open_sessions(url, rng.sample(world.learner_ids[1:], args.learners))
    data_dir = Path(tempfile.mkdtemp(prefix="lectern-bench-var-"))
    try:
        env = {"DATABASE_URL": url, "LECTERN_LOG_LEVEL": "WARNING"}
        with running_server(data_dir, env, start_timeout_s=60) as server:
            print(f"server {server.url} (python -m streaming, pid {server.process.pid})", flush=True)
            return await run_http(server.url, world, tokens, rng, args.requests)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per endpoint")
    parser.add_argument("--learners", type=int, default=1000, help="distinct learners for my learning")
    parser.add_argument("--keep", action="store_true", help="leave the throwaway cluster running (EXPLAIN)")
    args = parser.parse_args()
    started = time.perf_counter()
    url = os.environ.get("BENCH_POSTGRES_URL", "")
    if url:
        figures = asyncio.run(bench(url, args))
    elif args.keep:
        workdir = Path(tempfile.mkdtemp(prefix="lectern-bench-pg-"))
        port = free_port()
        out = subprocess.run(
            ["bash", str(REPO / "scripts/services/postgres.sh"), "start", str(workdir / "pg"), str(port)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        url = out.strip().split("=", 1)[1]
        print(f"cluster kept: {url} (stop: bash scripts/services/postgres.sh stop {workdir / 'pg'})")
        figures = asyncio.run(bench(url, args))
    else:
        with throwaway_postgres() as url:
            figures = asyncio.run(bench(url, args))
    print(f"total {time.perf_counter() - started:.0f} s")
    search_p99, learning_p99 = figures["search_p99_ms"], figures["my_learning_p99_ms"]
    print(f"catalog search_p99_ms={search_p99:.1f} my_learning_p99_ms={learning_p99:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
