"""The audit log: who did what to credit-relevant data (policy versions, time corrections, flag
decisions). Append-only; written in the same transaction as the act it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import AuditEntry


def record(
    s: AsyncSession,
    *,
    actor: int | None,
    action: str,
    subject_type: str,
    subject_id: str | int,
    detail: dict[str, Any],
    at: datetime,
) -> AuditEntry:
    """Add one audit row to the caller's transaction (flushed with it)."""
    entry = AuditEntry(
        actor_person_id=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        detail=detail,
        at=at,
    )
    s.add(entry)
    return entry
