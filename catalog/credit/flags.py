"""Fraud flags (DOMAIN §4) on the review list: the engine's findings and settlement's cross-checks, written
once per (person, code, subject) — evaluating the same evidence again adds nothing.

Codes (docs/credit.md):
- `auto_confirm`: checks answered faster than `min_answer_ms` (fraud 3);
- `too_fast`: replay played above the maximum rate (fraud 5);
- `forward_seek`: a first viewing reached the end without covering the recording (fraud 1);
- `forged_or_replayed`: a heartbeat sequence number repeated with other content, or went backwards
  (fraud 4);
- `uncorroborated_heartbeats`: overflow-HLS heartbeats without the segment fetches that back them;
- `two_devices`: two clients of one person delivering or playing at once (the union counts once);
- `multi_course_overlap`: time credited in another course at the same instants (R29, subtracted);
- `after_end`: heartbeats or attention after the session ended;
- `daily_cap`: the Beijing day's cap (R6) cut a credit;
- `double_claim`: a session claimed again on another path at overlapping times (R24);
- `low_trust`: external credit resting on a platform-reported total (DingTalk live, R21) or an editable
  file: credited as pending, to be checked.
- `reciprocal_mentorship`: two people mentoring each other in the same year (fraud 20; both flagged);
- `backdated_mentorship`: an agreement starting well before it was proposed, or confirmed after its
  period ended (fraud 20; catalog.mentorship).
- `approval_too_fast`, `approval_bulk` (on the approver, fraud 21): an employer approval sooner than the
  policy's `approval_min_seconds` after the entry was posted, or one call approving more than
  `approval_bulk_flag_size` entries (catalog.credit.approval; flagged, never refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.credit.evidence import Flag
from catalog.evidence import insert_for
from catalog.models import FraudFlag

# The engine's codes → the review list's.
ENGINE_CODES = {
    "auto_confirm": "auto_confirm",
    "playback_rate": "too_fast",
    "completion_without_coverage": "forward_seek",
    "heartbeat_replay": "forged_or_replayed",
    "uncorroborated_heartbeats": "uncorroborated_heartbeats",
    "double_claim": "double_claim",
    "overlapping_courses": "multi_course_overlap",
}
CODES = (
    "auto_confirm",
    "too_fast",
    "forward_seek",
    "forged_or_replayed",
    "uncorroborated_heartbeats",
    "two_devices",
    "multi_course_overlap",
    "after_end",
    "daily_cap",
    "double_claim",
    "low_trust",
    "reciprocal_mentorship",
    "backdated_mentorship",
    "approval_too_fast",
    "approval_bulk",
)


def of_engine(flags: Iterable[Flag]) -> list[Flag]:
    """The engine's flags under the review list's codes."""
    return [Flag(ENGINE_CODES.get(f.code, f.code), f.severity, f.detail) for f in flags]


async def raise_flags(
    s: AsyncSession,
    flags: Iterable[Flag],
    *,
    person_id: int,
    subject: str,
    session_id: int | None,
    course_id: int | None,
    now: datetime,
    evidence: dict[str, Any] | None = None,
) -> int:
    """Insert the flags not yet on the list for (person, code, subject); the number added."""
    rows: dict[str, dict[str, Any]] = {}
    for flag in flags:
        if flag.code in rows:
            continue
        rows[flag.code] = {
            "person_id": person_id,
            "session_id": session_id,
            "course_id": course_id,
            "code": flag.code,
            "subject": subject,
            "severity": flag.severity,
            "evidence": {**(evidence or {}), **flag.detail},
            "status": "open",
            "created_at": now,
            "resolved_by": None,
            "resolved_at": None,
            "resolution": "",
        }
    if not rows:
        return 0
    result = await s.execute(insert_for(s, FraudFlag).values(list(rows.values())).on_conflict_do_nothing())
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
