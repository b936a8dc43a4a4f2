"""The migrations run up, down and up again on both engines; the demo seed is idempotent."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from catalog import demo
from catalog.db import Database, downgrade, migrate
from catalog.models import Course, Enrollment, Person, RoleAssignment, Session
from infra.settings import normalise_database_url

if TYPE_CHECKING:
    from infra.settings import Settings


async def test_migrations_downgrade_to_baseline_and_upgrade_again(database_url: str) -> None:
    url = normalise_database_url(database_url)
    await asyncio.to_thread(downgrade, url, "0001")
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    try:
        async with db.sessions.begin() as s:
            assert await s.scalar(select(func.count()).select_from(Course)) == 0
    finally:
        await db.close()


async def test_demo_seeds_a_world_once_and_prints_logins(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await demo.run(settings) == 0
    assert await demo.run(settings) == 0
    out = capsys.readouterr().out
    assert "13800000001" in out
    assert demo.DEMO_PASSWORD in out
    db = Database(settings.effective_database_url)
    try:
        async with db.sessions.begin() as s:
            counts = [
                await s.scalar(select(func.count()).select_from(t))
                for t in (Person, RoleAssignment, Course, Session, Enrollment)
            ]
            published = await s.scalar(
                select(func.count()).select_from(Course).where(Course.status == "published")
            )
            categories = set(await s.scalars(select(Course.category)))
    finally:
        await db.close()
    assert counts == [len(demo.PEOPLE), 14, len(demo.COURSES), 1, 2]
    assert published == len(demo.COURSES)
    assert categories == {"public", "professional"}
