"""What fault tests need of the catalog: the demo world seeded into a database (SQLite in a data dir or a
fresh PostgreSQL database), a Redis database of their own, and the catalog's record of a session read back
(its actual start and end, its replays) from the database and through the API as a learner sees it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from catalog import Database
from catalog.models import Recording, Session
from infra.settings import Settings, env_names, normalise_database_url
from tests.server import REPO, TEST_SECRET_KEY

DEMO_SESSION = 1
DEMO_EXPERT = 8  # 孙立教授, the expert of the demo's session 1 (catalog.demo)
DEMO_LEARNER = "13800000010"
DEMO_PASSWORD = "lectern-demo-2026"


def seed_demo(data_dir: Path, env: Mapping[str, str] | None = None) -> None:
    """`lectern demo` (migrate + seed) against the database the server will use: the data dir's SQLite,
    or DATABASE_URL in `env`."""
    child = {k: v for k, v in os.environ.items() if k not in env_names()}
    child.update({"LECTERN_DATA_DIR": str(data_dir), "LECTERN_SECRET_KEY": TEST_SECRET_KEY, **(env or {})})
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", "from streaming.cli import main; raise SystemExit(main(['demo']))"],
        cwd=REPO,
        env=child,
        check=True,
        capture_output=True,
        timeout=90,
    )


def embedded_database_url(data_dir: Path) -> str:
    return Settings(data_dir=data_dir).effective_database_url


@dataclass(frozen=True)
class RedisDatabase:
    host: str
    port: int
    db: int

    def url(self, endpoint: str | None = None) -> str:
        """The database's URL, through `endpoint` (a proxy's host:port) when given."""
        return f"redis://{endpoint or f'{self.host}:{self.port}'}/{self.db}"


@dataclass(frozen=True)
class SessionRecord:
    actual_start: datetime | None
    actual_end: datetime | None
    recordings: tuple[str, ...]


async def session_record(database_url: str, session_id: int = DEMO_SESSION) -> SessionRecord:
    """What the catalog's database holds for a session, read directly."""
    db = Database(normalise_database_url(database_url))
    try:
        async with db.sessions.begin() as s:
            session = await s.get(Session, session_id)
            assert session is not None, f"no session {session_id}"
            recordings = await s.scalars(select(Recording.id).where(Recording.session_id == session_id))
            return SessionRecord(session.actual_start, session.actual_end, tuple(recordings))
    finally:
        await db.close()


async def listed_replays(base_url: str, session_id: int = DEMO_SESSION) -> list[dict[str, Any]]:
    """The replays of the session's course as an enrolled learner sees them through the API."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies set by 127.0.0.1 are otherwise dropped
    async with aiohttp.ClientSession(base_url, cookie_jar=jar) as http:
        async with http.post("/api/auth/login", json={"phone": DEMO_LEARNER, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200, await r.text()
        async with http.get(f"/api/sessions/{session_id}") as r:
            course_id = (await r.json())["course_id"]
        async with http.get(f"/api/courses/{course_id}") as r:
            replays: list[dict[str, Any]] = (await r.json())["replays"]
    return [r for r in replays if r["session_id"] == session_id]
