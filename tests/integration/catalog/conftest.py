"""Fixtures for the catalog's integration tests: a migrated database on SQLite and on PostgreSQL,
the catalog app over aiohttp's test client, and a small seeded world with one person per role.

Each engine's schema is built once per run by running the migrations into a template (a file for SQLite,
a template database for PostgreSQL); each test gets a fresh copy of it, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

import catalog
from catalog import accounts
from catalog.db import Database
from catalog.domain import CourseStatus, OrgType, Role
from catalog.models import (
    AuthSession,
    Course,
    Enrollment,
    Organization,
    Person,
    Recording,
    RoleAssignment,
    Session,
    SessionExpert,
)
from infra.appkeys import BUS, OBJECTS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.objects_local import LocalObjectStore
from infra.settings import Settings, normalise_database_url
from tests.helpers import service_env

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-not-for-production"


def _admin_pg_url() -> str:
    return service_env("TEST_POSTGRES_URL")


async def _pg_execute(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog-template") / "template.db"
    catalog.migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    admin = _admin_pg_url()
    name = f"lectern_tmpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        catalog.migrate(normalise_database_url(str(URL(admin).with_path(f"/{name}"))))
        yield admin, name
    finally:
        asyncio.run(_pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def engine_template(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """Which engine this test runs on, and its migrated template (set up outside the event loop)."""
    if request.param == "sqlite":
        return "sqlite", request.getfixturevalue("sqlite_template")
    return "postgres", request.getfixturevalue("postgres_template")


@pytest.fixture
async def database_url(engine_template: tuple[str, Any], tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated, empty database on each engine; the URL as an operator would write it."""
    engine, template = engine_template
    if engine == "sqlite":
        path = tmp_path / "lectern.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    admin, template_name = template
    name = f"lectern_test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield str(URL(admin).with_path(f"/{name}"))
    finally:
        await _pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Encrypts platform credentials in tests (LECTERN_CREDENTIALS_KEY): 32 bytes, Base64.
CREDENTIALS_KEY = "dGVzdC1jcmVkZW50aWFscy1rZXktMzItYnl0ZXMhISE="


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        data_dir=tmp_path / "var",
        credentials_key=CREDENTIALS_KEY,
    )


async def _memory_bus(app: web.Application) -> AsyncIterator[None]:
    bus = MemoryBus(retention=app[SETTINGS].bus_retention)
    app[BUS] = bus
    yield
    await bus.close()


def make_app(settings: Settings) -> web.Application:
    """The catalog on its own, wired like streaming.app.create_app does (error shape included; the
    in-process bus the catalog's consumer reads)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[READINESS] = {}
    # The embedded object store (a test may replace it): slides and uploads are signed URLs of it.
    app[OBJECTS] = LocalObjectStore(
        settings.objects_dir, signing_key=settings.secret_key, base_url=settings.base_url
    )
    app.cleanup_ctx.append(_memory_bus)
    catalog.setup(app)
    return app


AiohttpClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(make_app(settings))


@pytest.fixture(scope="session")
def password_hash() -> str:
    # Hashed once per run: argon2 is deliberately slow, and seeding must not dominate test time.
    return asyncio.run(accounts.hash_password(PASSWORD))


@dataclass
class Actor:
    """A seeded person and, once logged in, the headers that authenticate them."""

    person_id: int
    phone: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """Two providers, an employer, a bureau, an association and one person per role; courses and sessions."""

    db: Database
    password_hash: str
    orgs: dict[str, int] = field(default_factory=dict)
    actors: dict[str, Actor] = field(default_factory=dict)
    course_id: int = 0  # published, provider A, live session with the expert
    draft_course_id: int = 0  # draft, provider A
    session_id: int = 0
    _phones: int = 0

    def next_phone(self) -> str:
        self._phones += 1
        return f"139{self._phones:08d}"

    async def org(self, key: str, kind: OrgType, name: str, *, s: AsyncSession | None = None) -> int:
        async with self._tx(s) as s:
            org = Organization(type=kind.value, name=name, created_at=datetime.now(UTC))
            s.add(org)
            await s.flush()
            self.orgs[key] = org.id
            return org.id

    async def person(
        self,
        key: str,
        roles: list[tuple[Role, int | None]],
        employer: int | None = None,
        *,
        s: AsyncSession | None = None,
    ) -> Actor:
        now = datetime.now(UTC)
        phone = self.next_phone()
        async with self._tx(s) as s:
            p = Person(
                name=f"测试{key}",
                phone=phone,
                password_hash=self.password_hash,
                employer_org_id=employer,
                created_at=now,
            )
            s.add(p)
            await s.flush()
            s.add_all(
                RoleAssignment(person_id=p.id, role=r.value, org_id=o, created_at=now) for r, o in roles
            )
            token = f"token-{key}-{uuid.uuid4().hex}"
            csrf = f"csrf-{uuid.uuid4().hex}"
            s.add(
                AuthSession(
                    token_hash=accounts.token_hash(token),
                    person_id=p.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
        actor = Actor(p.id, phone, {"Cookie": f"lectern_session={token}", "X-CSRF-Token": csrf})
        self.actors[key] = actor
        return actor

    @contextlib.asynccontextmanager
    async def _tx(self, s: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """The caller's transaction (seed_world builds the world in one), or a new one."""
        if s is not None:
            yield s
            return
        async with self.db.sessions.begin() as new:
            yield new

    async def course(
        self,
        provider: int,
        *,
        status: CourseStatus = CourseStatus.PUBLISHED,
        title: str = "测试课程",
        capacity: int | None = None,
        s: AsyncSession | None = None,
        **extra: Any,
    ) -> int:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "description": "",
            "category": "professional",
            "industry": "",
            "specialty_tags": [],
            "credit_hours": Decimal("2.0"),
            "delivery": "live",
        }
        values.update(extra)
        async with self._tx(s) as s:
            c = Course(
                provider_org_id=provider,
                title=title,
                status=status.value,
                capacity=capacity,
                created_at=values.pop("created_at", now),
                updated_at=now,
                **values,
            )
            s.add(c)
            await s.flush()
            return c.id

    async def session(
        self,
        course_id: int,
        *,
        start: datetime | None = None,
        experts: tuple[int, ...] = (),
        s: AsyncSession | None = None,
    ) -> int:
        start = start or datetime.now(UTC) + timedelta(days=1)
        async with self._tx(s) as s:
            ss = Session(
                course_id=course_id,
                title="第一讲",
                kind="live",
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=2),
                external_platform="none",
                external_ids={},
            )
            s.add(ss)
            await s.flush()
            s.add_all(SessionExpert(session_id=ss.id, person_id=pid) for pid in experts)
            return ss.id

    async def recording(self, session_id: int, *, duration_s: float = 120.0, screen: bool = True) -> str:
        """A finalized recording of the session, as the consumer registers it from recording.finalized."""
        recording_id = f"rec-{uuid.uuid4().hex[:12]}"
        prefix = f"hls/{session_id}/{recording_id}"
        angles = {
            name: {
                "playlist_key": f"{prefix}/{name}/index.m3u8",
                "mp4_key": f"{prefix}/{name}.mp4",
                "start_s": start_s,
                "duration_s": duration_s - start_s,
                "width": 1280,
                "height": 720,
                "mp4_bytes": 1000,
            }
            for name, start_s in [("camera", 0.0), ("screen", 10.0)][: 2 if screen else 1]
        }
        now = datetime.now(UTC)
        async with self.db.sessions.begin() as s:
            s.add(
                Recording(
                    id=recording_id,
                    session_id=session_id,
                    state="finalized",
                    duration_s=duration_s,
                    size_bytes=4000,
                    angles=angles,
                    master_key=f"{prefix}/master.m3u8",
                    created_at=now,
                    finalized_at=now,
                )
            )
        return recording_id

    async def enroll(self, person_id: int, course_id: int, *, s: AsyncSession | None = None) -> None:
        async with self._tx(s) as s:
            s.add(
                Enrollment(
                    person_id=person_id,
                    course_id=course_id,
                    source="self",
                    status="enrolled",
                    enrolled_at=datetime.now(UTC),
                )
            )


async def seed_world(db: Database, password_hash: str) -> World:
    """The world, in one transaction (every test that asks for it pays for it: one commit, not 19)."""
    w = World(db, password_hash)
    async with db.sessions.begin() as s:
        bureau = await w.org("bureau", OrgType.HRSS_BUREAU, "青岛市人力资源和社会保障局", s=s)
        assoc = await w.org("association", OrgType.CE_ASSOCIATION, "青岛市继续教育协会", s=s)
        provider = await w.org("provider", OrgType.CE_BASE, "青岛继续教育基地", s=s)
        other = await w.org("other_provider", OrgType.TRAINING_INSTITUTION, "青岛培训学校", s=s)
        employer = await w.org("employer", OrgType.EMPLOYER, "青岛港集团", s=s)
        await w.person("learner", [(Role.LEARNER, employer)], employer=employer, s=s)
        await w.person("expert", [(Role.EXPERT, None)], s=s)
        await w.person("provider_admin", [(Role.PROVIDER_ADMIN, provider)], s=s)
        await w.person("other_provider_admin", [(Role.PROVIDER_ADMIN, other)], s=s)
        await w.person("employer_admin", [(Role.EMPLOYER_ADMIN, employer)], employer=employer, s=s)
        await w.person("reviewer", [(Role.REVIEWER, assoc)], s=s)
        await w.person("bureau", [(Role.BUREAU, bureau)], s=s)
        await w.person("admin", [(Role.ADMIN, None)], s=s)
        await w.person("staff", [(Role.LEARNER, employer)], employer=employer, s=s)  # a second employee
        w.course_id = await w.course(provider, title="建筑工程新技术", s=s)
        w.draft_course_id = await w.course(provider, status=CourseStatus.DRAFT, title="草稿课程", s=s)
        w.session_id = await w.session(w.course_id, experts=(w.actors["expert"].person_id,), s=s)
        await w.enroll(w.actors["learner"].person_id, w.course_id, s=s)
    return w


@pytest.fixture
async def world(client: TestClient[web.Request, web.Application], password_hash: str) -> World:
    return await seed_world(client.app[catalog.DATABASE], password_hash)
