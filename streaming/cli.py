"""The `lectern` command: serve, migrate, demo. The environment is read here and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lectern", description="Lectern: live lectures and credit hours")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (default)")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("demo", help="seed a demo world and print its logins")
    args = parser.parse_args(argv)
    settings = _settings()
    _configure_logging(settings)
    command = args.command or "serve"
    if command == "migrate":
        return cmd_migrate(settings)
    if command == "demo":
        return cmd_demo(settings)
    return cmd_serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
