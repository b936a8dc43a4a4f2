"""The catalog's database: one async engine per process, sessions per use case, Alembic migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from infra.errors import Unavailable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Connections per server process by default (LECTERN_DATABASE_POOL_SIZE), and no overflow: PostgreSQL
# runs about two statements per core usefully at once; more only share the cores and stretch every
# statement (a 10 ms search became 40 ms behind seven others on the 2-core benchmark machine), while a
# request waiting for a free connection waits only for statements ahead of it (docs/performance.md).
POOL_SIZE = 4

# For the catalog's short statements (docs/performance.md, "Catalog"):
SERVER_SETTINGS = {
    # JIT compiling them costs more than it saves.
    "jit": "off",
    # Planned with their values every time: a search word's frequency, LIMIT and OFFSET decide between
    # walking an index in sort order and sorting the matches; a prepared statement's generic plan
    # would decide blind.
    "plan_cache_mode": "force_custom_plan",
    # Parallel workers run ahead of a LIMIT (a walk that should stop after a page reads ten times
    # more), and the cores are better spent on concurrent requests.
    "max_parallel_workers_per_gather": "0",
}


class Database:
    """Owns the engine and the session factory; `sessions.begin()` is one transaction, `reading()` a
    connection for read-only use cases."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        kwargs: dict[str, object] = {"echo": echo}
        postgres = url.startswith("postgresql")
        if postgres:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=0,  # more would only share the cores (see POOL_SIZE)
                connect_args={"server_settings": SERVER_SETTINGS},
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if postgres:
            event.listen(self.engine.sync_engine, "checkout", _replace_if_closed)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self._reading = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def reading(self) -> AsyncConnection:
        """A connection for a read-only use case, used as `async with db.reading() as conn:`: Core
        statements, no ORM identity map. In autocommit, so no BEGIN/COMMIT round trips: each statement
        sees its own snapshot, as it would in a READ COMMITTED transaction."""
        return self._reading.connect()

    async def check(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise Unavailable(f"database unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.engine.dispose()


def _replace_if_closed(dbapi_conn: Any, _record: object, _proxy: object) -> None:
    """Instead of pool_pre_ping's round trip on every checkout (with asyncpg, three: BEGIN, the ping,
    ROLLBACK; a fifth of a short request's cost): asyncpg notices when the server closes a pooled
    connection (a restart, an idle timeout), and the pool replaces such a connection. A connection
    that dies without the server closing it fails its next request, as it would between a ping and
    the request anyway."""
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (blocking; call from a thread inside a loop)."""
    if url.startswith("sqlite"):
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


__all__ = ["Database", "migrate", "migrate_async"]
