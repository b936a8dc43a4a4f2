"""Throttle counts in the catalog's database: an attempt is counted under a row lock, so parallel
attempts each see the ones before them (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the first statement
writes, which takes the database's write lock until commit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Throttle
from catalog.throttle import POLICIES, Count, Policy, decide

Check = tuple[Policy, str]  # a policy and the key it counts, e.g. (LOGIN_PHONE, "13900000001")

# Rows untouched for longer than every policy's window count nothing any more.
STALE_AFTER = timedelta(seconds=max(p.window_s for p in POLICIES))


def _which(checks: Sequence[Check]) -> Any:
    return or_(*(and_(Throttle.scope == p.scope, Throttle.key == key) for p, key in checks))


async def admit(s: AsyncSession, checks: Sequence[Check], now: datetime) -> int | None:
    """Count one attempt against every check and return None; or, when any check says wait, count
    nothing and return the seconds to wait (the longest). Call inside the use case's transaction."""
    ordered = sorted(set(checks), key=lambda c: (c[0].scope, c[1]))  # one lock order: no deadlocks
    fresh = [{"scope": p.scope, "key": key, "count": 0, "last_at": now} for p, key in ordered]
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Written first: on SQLite this takes the write lock before anything is read.
    await s.execute(insert(Throttle).values(fresh).on_conflict_do_nothing())
    rows = await s.execute(
        select(Throttle.scope, Throttle.key, Throttle.count.label("n"), Throttle.last_at)
        .where(_which(ordered))
        .order_by(Throttle.scope, Throttle.key)
        .with_for_update()
    )
    current = {(r.scope, r.key): Count(r.n, r.last_at) for r in rows}
    verdicts = [(p, key, decide(p, current.get((p.scope, key)), now)) for p, key in ordered]
    waits = [v.retry_after_s for _, _, v in verdicts if not v.admitted]
    if waits:
        return max(waits)
    for p, key, v in verdicts:
        await s.execute(
            update(Throttle)
            .where(Throttle.scope == p.scope, Throttle.key == key)
            .values(count=v.count.count, last_at=v.count.last_at)
        )
    return None


async def refund(s: AsyncSession, checks: Sequence[Check]) -> None:
    """Take back one counted attempt per check (it succeeded: the counts are of failures)."""
    await s.execute(
        update(Throttle).where(_which(checks), Throttle.count > 0).values(count=Throttle.count - 1)
    )


async def forget_stale(s: AsyncSession, now: datetime) -> None:
    await s.execute(delete(Throttle).where(Throttle.last_at < now - STALE_AFTER))
