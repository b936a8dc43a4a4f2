"""Reading training plans and their items out of JSON bodies; every failure names its field. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from catalog import fields as f
from catalog.domain import Category
from infra.errors import Invalid

NOTE_MAX = 500
TARGET_MAX = Decimal("999.9")  # 学时 per person for one item
TARGETS_MAX = 2000  # people one item may target
YEARS_BACK = 1  # plans for last year (written late), this year and next year
YEARS_AHEAD = 1


@dataclass(frozen=True)
class NewPlan:
    year: int
    title: str


@dataclass(frozen=True)
class ItemSpec:
    """An item as sent: exactly one of course_id and category (when both are given, which one is meant
    is not guessed). In a change, None means "unchanged" for each field."""

    course_id: int | None
    category: Category | None
    person_ids: list[int] | None
    target_xueshi: Decimal | None
    note: str | None


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid(f"{what} is a JSON object", field="body")
    return body


def parse_plan(body: Any, today: date) -> NewPlan:
    data = _object(body, "a plan")
    f.reject_unknown(data, {"year", "title"})
    year = f.integer(data, "year", minimum=today.year - YEARS_BACK, maximum=today.year + YEARS_AHEAD)
    assert year is not None
    return NewPlan(year, f.required_text(data, "title", max_len=f.TITLE_MAX))


def parse_title(body: Any) -> str:
    data = _object(body, "a plan change")
    f.reject_unknown(data, {"title"})
    return f.required_text(data, "title", max_len=f.TITLE_MAX)


def _target(data: dict[str, Any]) -> Decimal | None:
    value = f.credit_hours(data, "target_xueshi", required=False)
    if value is not None and not Decimal(0) < value <= TARGET_MAX:
        raise Invalid(f"target_xueshi must be between 0.1 and {TARGET_MAX}", field="target_xueshi")
    return value


def parse_item(body: Any, *, change: bool = False) -> ItemSpec:
    """A new item (course_id or category, person_ids and target_xueshi required), or with `change` a
    change of some of its fields (at least one)."""
    data = _object(body, "a plan item")
    f.reject_unknown(data, {"course_id", "category", "person_ids", "target_xueshi", "note"})
    if change and not data:
        raise Invalid("say what changes", field="body")
    course_id = f.integer(data, "course_id", minimum=1, required=False, nullable=True)
    category = (
        f.choice(data, "category", Category, required=False) if data.get("category") is not None else None
    )
    if course_id is not None and category is not None:
        raise Invalid("an item names a course or a category, not both", field="category")
    if not change and course_id is None and category is None:
        raise Invalid("an item needs a course_id or a category", field="course_id")
    person_ids = (
        f.id_list(data, "person_ids", max_items=TARGETS_MAX) if "person_ids" in data or not change else None
    )
    if person_ids is not None and not person_ids:
        raise Invalid("an item targets at least one person", field="person_ids")
    target = _target(data)
    if target is None and not change:
        raise Invalid("target_xueshi is required", field="target_xueshi")
    note = f.text(data, "note", max_len=NOTE_MAX, min_len=0, required=False, multiline=True)
    return ItemSpec(course_id, category, person_ids, target, note)
