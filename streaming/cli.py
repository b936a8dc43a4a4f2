"""The `lectern` command: serve, migrate, demo, import, report. The environment is read here and nowhere
else."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import IO

from aiohttp import web

import catalog
from infra.settings import Settings, SettingsError, from_env, with_secret_key

log = logging.getLogger("lectern")


def _settings() -> Settings:
    try:
        return with_secret_key(from_env(os.environ))
    except SettingsError as exc:
        print(f"lectern: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_migrate(settings: Settings) -> int:
    catalog.migrate(settings.effective_database_url)
    log.info("database migrated")
    return 0


def cmd_serve(settings: Settings) -> int:
    from streaming.app import create_app

    if not settings.database_url:
        # Embedded mode: a fresh machine needs no separate migrate step.
        catalog.migrate(settings.effective_database_url)
    log.info("starting lectern settings=%s", settings.redacted())
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


def cmd_demo(settings: Settings) -> int:
    from catalog import demo

    catalog.migrate(settings.effective_database_url)
    return int(asyncio.run(demo.run(settings)))


def _progress_bar(fraction: float, width: int = 30) -> None:
    done = int(fraction * width)
    print(f"\r[{'#' * done}{'.' * (width - done)}] {fraction:4.0%}", end="", file=sys.stderr, flush=True)


async def _import(
    settings: Settings, file: IO[bytes], name: str, session_id: int, platform: str | None
) -> int:
    from datetime import UTC, datetime

    from catalog import external_imports
    from infra.errors import DomainError
    from integrations.records import Platform

    db = catalog.Database(settings.effective_database_url)
    try:
        report = await external_imports.import_file(
            db,
            None,  # the operator, at the server's console
            session_id=session_id,
            file=file,
            file_name=name,
            now=datetime.now(UTC),
            platform=Platform(platform) if platform else None,
            keep_all_rows=True,
            on_progress=_progress_bar,
        )
    except DomainError as exc:
        print(f"\nlectern import: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    print(file=sys.stderr)
    for row in report.rows:
        print(row.line())
    counts = report.counts
    if report.already_imported:
        print(f"this file was imported before (batch {report.batch_id}): nothing changed", file=sys.stderr)
    print(
        f"batch {report.batch_id}: {counts.get('rows', 0)} rows, {counts.get('matched', 0)} matched, "
        f"{counts.get('needs_review', 0)} need review, {counts.get('skipped', 0)} skipped",
        file=sys.stderr,
    )
    return 0


def cmd_import(settings: Settings, path: str, session_id: int, platform: str | None) -> int:
    """`lectern import FILE --session ID`: an exported attendance file into a session, with a progress bar
    on stderr and the per-row report (tab-separated: row, status, reason, name, person) on stdout."""
    if not os.path.isfile(path):
        print(f"lectern import: no file {path}", file=sys.stderr)
        return 2
    catalog.migrate(settings.effective_database_url)
    with open(path, "rb") as file:
        return asyncio.run(_import(settings, file, os.path.basename(path), session_id, platform))


class _RowsBar:
    """`lectern report`'s progress on stderr: rows written of the total, redrawn in place at most every
    0.2 s (a terminal redrawn for every row would slow the export down)."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self.shown_at = 0.0

    def __call__(self, done: int, total: int) -> None:
        at = time.monotonic()
        if done < total and at - self.shown_at < 0.2:
            return
        self.shown_at = at
        fraction = done / total if total else 1.0
        bar = "#" * int(fraction * self.width)
        print(
            f"\r[{bar:.<{self.width}}] {fraction:4.0%} {done:,}/{total:,} rows",
            end="",
            file=sys.stderr,
            flush=True,
        )


async def _report(settings: Settings, year: int, provider: int | None, out: str) -> int:
    from pathlib import Path

    from catalog.supervision import export
    from infra.errors import DomainError

    db = catalog.Database(settings.effective_database_url)
    try:
        written = await export.report_to_file(db, year, provider, Path(out), on_progress=_RowsBar())
    except DomainError as exc:
        print(f"\nlectern report: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    print(
        f"\n{out}: {written.providers} providers, {written.sessions} sessions, {written.entries} entries",
        file=sys.stderr,
    )
    return 0


def cmd_report(settings: Settings, year: int, provider: int | None, out: str) -> int:
    """`lectern report --year Y [--provider ID] --out FILE`: the supervision report (docs/supervision.md)
    of every provider, or one, as .xlsx or .csv, with a progress bar on stderr."""
    if not out.lower().endswith((".xlsx", ".csv")):
        print("lectern report: --out must end in .xlsx or .csv", file=sys.stderr)
        return 2
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        print(f"lectern report: no folder for {out}", file=sys.stderr)
        return 2
    catalog.migrate(settings.effective_database_url)
    return asyncio.run(_report(settings, year, provider, out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lectern", description="Lectern: live lectures and credit hours")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (default)")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("demo", help="seed a demo world and print its logins")
    imp = sub.add_parser("import", help="import a Tencent Meeting / DingTalk attendance file into a session")
    imp.add_argument("file", help="the exported CSV or .xlsx file")
    imp.add_argument("--session", type=int, required=True, help="the session's id")
    imp.add_argument("--platform", choices=["tencent", "dingtalk_conf", "dingtalk_live"], default=None)
    rep = sub.add_parser("report", help="the supervision report of a credit year as .xlsx or .csv")
    rep.add_argument("--year", type=int, required=True, help="the credit year (Beijing)")
    rep.add_argument("--provider", type=int, default=None, help="one provider's organization id")
    rep.add_argument("--out", required=True, help="the file to write: .xlsx or .csv")
    args = parser.parse_args(argv)
    settings = _settings()
    _configure_logging(settings)
    command = args.command or "serve"
    if command == "migrate":
        return cmd_migrate(settings)
    if command == "demo":
        return cmd_demo(settings)
    if command == "import":
        return cmd_import(settings, args.file, args.session, args.platform)
    if command == "report":
        return cmd_report(settings, args.year, args.provider, args.out)
    return cmd_serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
