"""Helpers for the programme's tests (mentorship, training plans): the catalog's own fixtures, callers for
service-level calls with a chosen clock, and short HTTP calls as a seeded person.

The tests here use the catalog's fixtures (a migrated database per test on SQLite and PostgreSQL, the
catalog app, the seeded world) instead of this directory's conftest (the whole app on SQLite): a test
module takes them with `globals().update(CATALOG_FIXTURES)` (pytest finds fixtures among a module's
names, and a module's fixtures win over a conftest's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog.credit.engine import credit_year
from catalog.domain import Caller, Role
from catalog.models import Person, RoleAssignment
from tests.integration.catalog import conftest as catalog_conftest

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]

# The catalog's fixtures, to be assigned at a test module's top level (pytest finds fixtures there).
CATALOG_FIXTURES = {
    name: getattr(catalog_conftest, name)
    for name in (
        "sqlite_template",
        "postgres_template",
        "engine_template",
        "database_url",
        "settings",
        "client",
        "password_hash",
        "world",
    )
}


async def caller(w: World, key: str) -> Caller:
    """The Caller a seeded person's login would give (their roles as stored)."""
    person_id = w.actors[key].person_id
    async with w.db.sessions.begin() as s:
        person = await s.get(Person, person_id)
        assert person is not None
        roles = (
            await s.execute(
                select(RoleAssignment.role, RoleAssignment.org_id).where(
                    RoleAssignment.person_id == person_id
                )
            )
        ).all()
    return Caller(person_id, person.employer_org_id, frozenset((Role(r), o) for r, o in roles))


def name_of(key: str) -> str:
    """A seeded person's name (World.person names them so)."""
    return f"测试{key}"


async def call(
    client: Client, w: World, key: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """`method path` as the seeded person `key`: (status, JSON body)."""
    client.session.cookie_jar.clear()
    resp = await client.request(method, path, json=body, headers=w.actors[key].headers)
    data = await resp.json() if resp.content_type == "application/json" else None
    assert resp.status < 500, data
    return resp.status, data


def this_year() -> int:
    """The current credit year (Beijing)."""
    return credit_year(datetime.now(UTC))
