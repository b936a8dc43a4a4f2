"""External attendance imports: a 3,000-participant Tencent meeting pulled through the loopback fake
(60 pages of 50) and a 50,000-row .xlsx export, each matched (phone hashes) and stored as one batch.

    .venv/bin/python bench/import.py            # SQLite in a temp dir; about a minute
    BENCH_DATABASE_URL=postgresql://u@h/db ...  # an empty, migratable database instead

Each phase runs in a child process so its peak RSS is its own. Baselines in the same run: the pull's
transport alone (the 60 pages fetched, nothing parsed into records or stored), and csv.reader over the
same 50,000 rows as CSV (the cheapest possible parse). A 5,000-row file shows that memory does not grow
with the file (streamed). Last line: `import api_rows_per_s=<...> xlsx_rows_per_s=<...>`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchkit import spawn

PARTICIPANTS = 3000
PAGE_SIZE = 50
ROWS = 50_000
SMALL_ROWS = 5_000
LEARNERS = 3000
T0 = datetime(2024, 12, 24, 2, 0, tzinfo=UTC)  # 10:00 Beijing
SECRET_ID = "AKIDbench000000000000"


def phone_of(i: int) -> str:
    return f"139{i:08d}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- setup (parent) --------------------------------------------------------------------------------------


async def seed(url: str) -> dict[str, int]:
    """A provider, a course with LEARNERS enrolled learners, two external sessions."""
    from sqlalchemy import insert

    from catalog.db import Database
    from catalog.models import Course, Enrollment, Organization, Person, Session

    db = Database(url)
    now = datetime.now(UTC)
    async with db.sessions.begin() as s:
        org = Organization(type="ce_base", name="基准基地", created_at=now)
        s.add(org)
        await s.flush()
        course = Course(
            provider_org_id=org.id, title="基准课程", description="", category="public", industry="",
            specialty_tags=[], credit_hours=Decimal(2), delivery="external", status="published",
            created_at=now, updated_at=now,
        )  # fmt: skip
        s.add(course)
        await s.flush()
        sessions = []
        for title, ids in (("API", {"meeting_id": "13339451618278424869"}), ("文件", {}), ("小文件", {})):
            ss = Session(
                course_id=course.id, title=title, kind="external", scheduled_start=T0,
                scheduled_end=T0 + timedelta(hours=2), external_platform="tencent", external_ids=ids,
            )  # fmt: skip
            s.add(ss)
            await s.flush()
            sessions.append(ss.id)
        people = [
            {"name": f"学员{i}", "phone": phone_of(i), "password_hash": "x", "created_at": now}
            for i in range(LEARNERS)
        ]
        ids = list(await s.scalars(insert(Person).returning(Person.id), people))
        await s.execute(
            insert(Enrollment),
            [{"person_id": pid, "course_id": course.id, "source": "self", "status": "enrolled",
              "enrolled_at": now} for pid in ids],
        )  # fmt: skip
    await db.close()
    return {"api_session": sessions[0], "file_session": sessions[1], "small_session": sessions[2]}


def write_xlsx(path: Path, rows: int) -> None:
    """A Tencent-style detail sheet: 8 meeting-information rows, the header on row 9, `rows` joins of
    LEARNERS people (several rows each), phones on two thirds of them, a summary row at the end."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("成员参会明细")
    sheet.append(["会议主题", "基准会议"])
    sheet.append(["会议号", "445999969"])
    for _ in range(6):
        sheet.append([])
    sheet.append(["用户昵称（入会昵称）", "入会时间", "退会时间", "单次参会时长", "房间类型", "手机号"])
    start = datetime(2024, 12, 24, 10, 0)  # noqa: DTZ001 - Beijing wall clock, as exports write it
    for i in range(rows):
        who = i % LEARNERS
        join = start + timedelta(seconds=(i // LEARNERS) * 7 + who % 600)
        leave = join + timedelta(minutes=40)
        sheet.append(
            [f"学员{who}", join.strftime("%Y-%m-%d %H:%M:%S"), leave.strftime("%Y-%m-%d %H:%M:%S"),
             "0:40:00", "PC" if i % 2 else "Android", phone_of(who) if who % 3 else ""]
        )  # fmt: skip
    sheet.append(["合计", "", "", "", "", ""])
    book.save(path)


def write_csv(xlsx_path: Path, csv_path: Path) -> None:
    from integrations.xlsx import Workbook

    with (
        xlsx_path.open("rb") as f,
        Workbook(f) as book,
        csv_path.open("w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        for _n, cells in book.rows(book.sheets[0]):
            writer.writerow(["" if c is None else c for c in cells])


# -- phases (children) -----------------------------------------------------------------------------------


async def phase_api(url: str, session_id: int) -> dict[str, float]:
    import aiohttp
    from aiohttp import web

    from catalog import external_imports
    from catalog.db import Database
    from integrations.records import Platform, Source
    from integrations.tencent import TencentClient, TencentCredentials, phone_hash
    from tests.fakes.tencent_server import FakeMeeting, FakeParticipant, FakeTencent

    fake = FakeTencent(app_id="200000001", secret_id=SECRET_ID, secret_key="benchsecretkey")
    start = int(T0.timestamp())
    fake.add(
        FakeMeeting(
            "13339451618278424869", "445999969", "基准会议", start, start + 7200, "host",
            [FakeParticipant(
                f"u{i}" if i % 5 else "", f"学员{i % LEARNERS}", start + i % 600, start + 3600 + i % 600,
                instanceid=0 if i % 97 == 0 else 1, ms_open_id=f"ms{i}",
                phone=phone_hash(phone_of(i % LEARNERS), SECRET_ID) if i % 3 else "",
            ) for i in range(PARTICIPANTS)],
        )
    )  # fmt: skip
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    creds = TencentCredentials("200000001", SECRET_ID, "benchsecretkey", "host")
    db = Database(url)
    async with aiohttp.ClientSession() as http:
        client = TencentClient(http, creds, base_url=f"http://127.0.0.1:{port}")
        t = time.perf_counter()
        pos, pages = 0, 0
        while True:  # the transport floor: the same 60 signed requests, nothing else
            data = await client.get(
                "/v1/meetings/13339451618278424869/participants",
                {"userid": "host", "pos": pos, "size": PAGE_SIZE},
            )
            pages += 1
            if not data.get("has_remaining"):
                break
            pos = int(data["next_pos"])
        fetch_s = time.perf_counter() - t
        t = time.perf_counter()
        report = await external_imports.import_rows(
            db, None, session_id=session_id, platform=Platform.TENCENT, source=Source.API,
            payload_hash="bench-api", now=datetime.now(UTC), tencent_secret_id=SECRET_ID,
            chunks=external_imports.record_chunks(
                client.participant_pages("13339451618278424869", page_size=PAGE_SIZE)
            ),
        )  # fmt: skip
        import_s = time.perf_counter() - t
    await db.close()
    await runner.cleanup()
    return {
        "pages": pages,
        "rows": report.counts["rows"],
        "matched": report.counts["matched"],
        "needs_review": report.counts["needs_review"],
        "fetch_s": fetch_s,
        "import_s": import_s,
        "rss_mb": peak_rss_mb(),
    }


async def phase_file(url: str, session_id: int, path: str) -> dict[str, float]:
    from catalog import external_imports
    from catalog.db import Database

    db = Database(url)
    t = time.perf_counter()
    with open(path, "rb") as f:  # noqa: ASYNC230 - a benchmark child, nothing else on its loop
        report = await external_imports.import_file(
            db, None, session_id=session_id, file=f, file_name=Path(path).name, now=datetime.now(UTC)
        )
    import_s = time.perf_counter() - t
    await db.close()
    return {
        "rows": report.counts["rows"],
        "matched": report.counts["matched"],
        "needs_review": report.counts["needs_review"],
        "skipped": report.counts["skipped"],
        "import_s": import_s,
        "rss_mb": peak_rss_mb(),
    }


def phase_parse(path: str) -> dict[str, float]:
    """Parse only (no database): ours over the .xlsx, or csv.reader over the CSV (the baseline)."""
    t = time.perf_counter()
    rows = 0
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            for _row in csv.reader(f):
                rows += 1
    else:
        from integrations.files import open_attendance

        with open(path, "rb") as f, open_attendance(f, platform=None) as opened:
            for _row in opened.rows():
                rows += 1
    return {"rows": rows, "parse_s": time.perf_counter() - t, "rss_mb": peak_rss_mb()}


def child(args: list[str]) -> dict[str, float]:
    proc = spawn(__file__, "--child", *args)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed ({proc.returncode})")
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "api":
            result = asyncio.run(phase_api(rest[0], int(rest[1])))
        elif kind == "file":
            result = asyncio.run(phase_file(rest[0], int(rest[1]), rest[2]))
        elif kind == "parse":
            result = phase_parse(rest[0])
        else:
            write_xlsx(Path(rest[0]), int(rest[1]))
            result = {}
        print(json.dumps(result))
        return

    from catalog.db import migrate
    from infra.settings import normalise_database_url

    with tempfile.TemporaryDirectory(prefix="lectern-bench-import-") as tmp:
        work = Path(tmp)
        url = normalise_database_url(os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work / 'bench.db'}")
        migrate(url)
        ids = asyncio.run(seed(url))
        big, small, big_csv = work / "big.xlsx", work / "small.xlsx", work / "big.csv"
        t = time.perf_counter()
        child(["write", str(big), str(ROWS)])
        child(["write", str(small), str(SMALL_ROWS)])
        write_csv(big, big_csv)
        print(
            f"fixtures written in {time.perf_counter() - t:.1f} s ({big.stat().st_size / 1e6:.1f} MB .xlsx)"
        )

        api = child(["api", url, str(ids["api_session"])])
        parse_csv = child(["parse", str(big_csv)])
        parse_xlsx = child(["parse", str(big)])
        small_run = child(["file", url, str(ids["small_session"]), str(small)])
        big_run = child(["file", url, str(ids["file_session"]), str(big)])

    api_rate = api["rows"] / api["import_s"]
    xlsx_rate = big_run["rows"] / big_run["import_s"]
    print(
        f"api pull: {api['rows']:.0f} rows in {api['pages']:.0f} pages of {PAGE_SIZE}, "
        f"{api['matched']:.0f} matched, {api['needs_review']:.0f} to review: {api['import_s']:.2f} s "
        f"(target < 10 s); transport alone {api['fetch_s']:.2f} s; peak RSS {api['rss_mb']:.0f} MB"
    )
    print(
        f"xlsx {ROWS} rows: import {big_run['import_s']:.1f} s (target < 60 s), "
        f"{big_run['matched']:.0f} matched, {big_run['needs_review']:.0f} to review, "
        f"{big_run['skipped']:.0f} skipped; peak RSS {big_run['rss_mb']:.0f} MB"
    )
    growth = big_run["rss_mb"] / small_run["rss_mb"]
    print(
        f"xlsx {SMALL_ROWS} rows: import {small_run['import_s']:.1f} s, "
        f"peak RSS {small_run['rss_mb']:.0f} MB ({growth:.2f}x the memory for 10x the rows)"
    )
    print(
        f"parse only, {ROWS} rows: ours (.xlsx) {parse_xlsx['parse_s']:.2f} s, "
        f"peak RSS {parse_xlsx['rss_mb']:.0f} MB; baseline csv.reader (same rows as CSV) "
        f"{parse_csv['parse_s']:.2f} s, {parse_csv['rss_mb']:.0f} MB"
    )
    print(f"import api_rows_per_s={api_rate:.0f} xlsx_rows_per_s={xlsx_rate:.0f}")


if __name__ == "__main__":
    main()
