"""Plan vs actual, pure: from a plan's items (a course or a category, the people targeted, the target
学时 per person) and the targeted people's ledger rows of the plan's year, each item's and each
person's figures. Actual = registered 学时 (R23); pending is shown apart and never counts. No SQL, no
HTTP.

How an entry counts: toward a course item when it is of that course; toward a category item when it is
of that category (any course, or none: a mentorship award is 专业). One entry may count toward several
items (a 专业 course and the 专业 category): each item is measured on its own. Reversal entries carry the
status of what they reverse and negative 学时, so sums are net; rejected and revoked entries count
nowhere. A person's completion counts at most the target of each item (more in one item does not make
up for less in another)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

REGISTERED = "registered"  # catalog.credit.ledger.REGISTERED: what counts (R23)
PENDING = "pending"


class PlanStatus(StrEnum):
    DRAFT = "draft"  # the employer's administrators edit it freely
    PUBLISHED = "published"  # staff may be enrolled from it; items may be added, nothing changed


@dataclass(frozen=True)
class Item:
    item_id: int
    course_id: int | None
    category: str | None
    target_xueshi: Decimal
    person_ids: tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    """One ledger row of a targeted person in the plan's year."""

    person_id: int
    course_id: int | None
    category: str
    status: str
    xueshi: Decimal


def xueshi_text(value: Decimal) -> str:
    """学时 as the API writes them: one decimal place, two when the value needs them ("4.5", "1.25")."""
    one = value.quantize(Decimal("0.1"))
    return str(one if one == value else value.quantize(Decimal("0.01")))


def percent(part: Decimal, whole: Decimal) -> float:
    """part ÷ whole in per cent with one decimal place (100 when nothing is asked)."""
    if whole <= 0:
        return 100.0
    return float((Decimal(100) * part / whole).quantize(Decimal("0.1")))


def _counts(item: Item, entry: Entry) -> bool:
    if item.course_id is not None:
        return entry.course_id == item.course_id
    return entry.category == item.category


@dataclass
class _Sums:
    registered: Decimal = Decimal(0)
    pending: Decimal = Decimal(0)


def _actuals(item: Item, entries: Iterable[Entry]) -> dict[int, _Sums]:
    sums = {pid: _Sums() for pid in item.person_ids}
    for e in entries:
        if e.person_id not in sums or not _counts(item, e):
            continue
        if e.status == REGISTERED:
            sums[e.person_id].registered += e.xueshi
        elif e.status == PENDING:
            sums[e.person_id].pending += e.xueshi
    return sums


def plan_vs_actual(items: Sequence[Item], entries: Sequence[Entry]) -> dict[str, Any]:
    """{"items": [per item: its people's figures and totals], "people": [per person: their items and
    totals]}. Figures per person and item: target, registered, pending, counted (registered up to the
    target), short_by (target − registered, at least 0), met."""
    by_person: dict[int, list[dict[str, Any]]] = {}
    out_items: list[dict[str, Any]] = []
    for item in items:
        target = item.target_xueshi
        rows: list[dict[str, Any]] = []
        counted_total = registered_total = pending_total = Decimal(0)
        for pid, sums in _actuals(item, entries).items():
            counted = max(Decimal(0), min(sums.registered, target))
            short = max(Decimal(0), target - sums.registered)
            row = {
                "person_id": pid,
                "target_xueshi": xueshi_text(target),
                "registered_xueshi": xueshi_text(sums.registered),
                "pending_xueshi": xueshi_text(sums.pending),
                "counted_xueshi": xueshi_text(counted),
                "short_by_xueshi": xueshi_text(short),
                "met": short == 0,
                "completion_pct": percent(counted, target),
            }
            rows.append(row)
            by_person.setdefault(pid, []).append({"item_id": item.item_id, **row})
            counted_total += counted
            registered_total += sums.registered
            pending_total += sums.pending
        asked = target * len(rows)
        out_items.append(
            {
                "item_id": item.item_id,
                "people": rows,
                "totals": {
                    "people": len(rows),
                    "met": sum(1 for r in rows if r["met"]),
                    "short": [r["person_id"] for r in rows if not r["met"]],
                    "target_xueshi": xueshi_text(asked),
                    "registered_xueshi": xueshi_text(registered_total),
                    "pending_xueshi": xueshi_text(pending_total),
                    "counted_xueshi": xueshi_text(counted_total),
                    "completion_pct": percent(counted_total, asked),
                },
            }
        )
    people = []
    for pid, rows in sorted(by_person.items()):
        asked = sum((Decimal(r["target_xueshi"]) for r in rows), Decimal(0))
        counted = sum((Decimal(r["counted_xueshi"]) for r in rows), Decimal(0))
        people.append(
            {
                "person_id": pid,
                "items": rows,
                "target_xueshi": xueshi_text(asked),
                "counted_xueshi": xueshi_text(counted),
                "completion_pct": percent(counted, asked),
                "short_items": [r["item_id"] for r in rows if not r["met"]],
            }
        )
    return {"items": out_items, "people": people}
