"""The catalog's pure rules: field parsing, the course state machine, roles per organization type,
and search escaping. (The login throttle's rules: test_throttle.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from catalog import fields, forms
from catalog.domain import CourseStatus, OrgType, Role, mask_phone, next_course_status, role_allowed_in
from catalog.search import bigrams, like_pattern
from infra.errors import Conflict, Invalid


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (CourseStatus.DRAFT, "publish", CourseStatus.PUBLISHED),
        (CourseStatus.DRAFT, "archive", CourseStatus.ARCHIVED),
        (CourseStatus.PUBLISHED, "archive", CourseStatus.ARCHIVED),
        (CourseStatus.PUBLISHED, "publish", None),
        (CourseStatus.ARCHIVED, "publish", None),
        (CourseStatus.ARCHIVED, "archive", None),
    ],
    ids=["publish-draft", "archive-draft", "archive-published", "republish", "unarchive", "rearchive"],
)
def test_course_state_machine_allows_only_forward_moves(
    status: CourseStatus, action: str, expected: CourseStatus | None
) -> None:
    if expected is None:
        with pytest.raises(Conflict):
            next_course_status(status, action)
    else:
        assert next_course_status(status, action) == expected


@pytest.mark.parametrize(
    ("role", "org_type", "allowed"),
    [
        (Role.PROVIDER_ADMIN, OrgType.CE_BASE, True),
        (Role.PROVIDER_ADMIN, OrgType.EMPLOYER, False),
        (Role.EMPLOYER_ADMIN, OrgType.EMPLOYER, True),
        (Role.REVIEWER, OrgType.CE_ASSOCIATION, True),
        (Role.REVIEWER, OrgType.HRSS_BUREAU, False),
        (Role.BUREAU, OrgType.HRSS_BUREAU, True),
        (Role.LEARNER, None, True),
        (Role.ADMIN, OrgType.TRAINING_INSTITUTION, False),
    ],
)
def test_roles_are_held_only_in_fitting_organizations(
    role: Role, org_type: OrgType | None, allowed: bool
) -> None:
    assert role_allowed_in(role, org_type) is allowed


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ({"credit_hours": 2}, "credit_hours", Decimal("2.0")),
        ({"credit_hours": "1.5"}, "credit_hours", Decimal("1.5")),
        ({"credit_hours": 0.5}, "credit_hours", Decimal("0.5")),
        ({"credit_hours": 1.25}, "credit_hours", Invalid),
        ({"credit_hours": "NaN"}, "credit_hours", Invalid),
        ({"credit_hours": 100000}, "credit_hours", Invalid),
        ({"credit_hours": None}, "credit_hours", Invalid),
    ],
    ids=["int", "string", "half", "two-decimals", "nan", "too-big", "null"],
)
def test_credit_hours_are_decimals_with_one_place(body: dict[str, Any], field: str, value: Any) -> None:
    if value is Invalid:
        with pytest.raises(Invalid) as info:
            fields.credit_hours(body, field)
        assert info.value.field == field
    else:
        assert fields.credit_hours(body, field) == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2030-01-01T09:00:00+08:00", datetime(2030, 1, 1, 1, 0, tzinfo=UTC)),
        ("2030-01-01T01:00:00Z", datetime(2030, 1, 1, 1, 0, tzinfo=UTC)),
        ("2030-01-01T09:00:00", Invalid),
        ("tomorrow", Invalid),
        (20300101, Invalid),
    ],
    ids=["offset", "zulu", "naive", "words", "number"],
)
def test_instants_need_an_offset_and_come_back_in_utc(raw: Any, expected: Any) -> None:
    if expected is Invalid:
        with pytest.raises(Invalid):
            fields.instant({"t": raw}, "t")
    else:
        assert fields.instant({"t": raw}, "t") == expected


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("13912345678", True),
        ("19912345678", True),
        ("12912345678", False),
        ("1391234567", False),
        ("+8613912345678", False),
        ("1391234567x", False),
    ],
)
def test_phones_are_mainland_mobile_numbers(phone: str, ok: bool) -> None:
    if ok:
        assert fields.phone({"phone": phone}) == phone
    else:
        with pytest.raises(Invalid):
            fields.phone({"phone": phone})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("用药", "%用药%"), ("100%", "%100\\%%"), ("a_b", "%a\\_b%"), ("c:\\x", "%c:\\\\x%")],
)
def test_search_text_is_escaped_for_like(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("港口", ["港口"]),
        ("安全生产", ["全生", "安全", "生产"]),
        ("口口口", ["口口"]),
        ("AI课", ["ai", "i课"]),
        ("a%_", ["%_", "a%"]),
        ("港", []),
        ("Ärzte", None),
        ("ß", None),
    ],
    ids=["two", "four", "repeated", "latin-lowered", "wildcards-literal", "one", "non-ascii-capital", "ß"],
)
def test_search_words_give_the_keys_catalog_bigrams_gives(text: str, expected: list[str] | None) -> None:
    assert bigrams(text) == expected


def test_page_size_is_bounded() -> None:
    assert fields.page({"page": "2", "page_size": "100"}).offset == 100
    with pytest.raises(Invalid) as info:
        fields.page({"page_size": "101"})
    assert info.value.field == "page_size"


def test_course_query_rejects_unknown_sorts_and_keeps_chinese_text() -> None:
    assert forms.course_query({"q": " 港口 "}).q == "港口"
    with pytest.raises(Invalid):
        forms.course_query({"sort": "price"})


def test_phones_are_masked_for_providers() -> None:
    assert mask_phone("13912345678") == "139****5678"
