"""The catalog's database handle on PostgreSQL: sessions are transactions, reads run in autocommit, and a
pooled connection the database closed is replaced rather than failing a request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from catalog.db import Database
from infra.settings import normalise_database_url
from tests.helpers import wait_until

# PostgreSQL's connection pool and transactions: these tests run on PostgreSQL only.
pytestmark = pytest.mark.parametrize("engine_template", ["postgres"], indirect=True)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    assert database_url.startswith("postgresql")
    database = Database(normalise_database_url(database_url))
    yield database
    await database.close()


async def test_a_session_is_one_transaction_and_a_read_is_not(db: Database) -> None:
    async with db.sessions.begin() as s:
        first = await s.scalar(text("SELECT pg_current_xact_id()::text"))
        assert await s.scalar(text("SELECT pg_current_xact_id()::text")) == first
    async with db.reading() as conn:
        first = await conn.scalar(text("SELECT pg_current_xact_id()::text"))
        assert await conn.scalar(text("SELECT pg_current_xact_id()::text")) != first


async def test_a_pooled_connection_the_database_closed_is_replaced(db: Database, database_url: str) -> None:
    async with db.reading() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        driver: Any = (await conn.get_raw_connection()).driver_connection
    admin = await asyncpg.connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await wait_until(driver.is_closed, timeout_s=5, message="the client to see the connection closed")
    async with db.reading() as conn:
        assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
