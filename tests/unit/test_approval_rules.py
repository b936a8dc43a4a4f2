"""Who may decide what about a ledger entry (catalog.credit.approval_rules), table-driven, and the
fraud-21 flags an approval raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog.credit import approval_rules as rules
from infra.errors import Conflict, DomainError, Forbidden, NotFound

EMPLOYER, OTHER, BUREAU = 10, 20, 30
ME, LEARNER = 1, 2

employer_admin = rules.Authority(ME, frozenset({EMPLOYER}), None, supervisor=False, admin=False)
hr_bureau = rules.Authority(ME, frozenset(), BUREAU, supervisor=True, admin=False)
industry_dept = rules.Authority(ME, frozenset(), None, supervisor=True, admin=False)
admin = rules.Authority(ME, frozenset(), None, supervisor=True, admin=True)
learner = rules.Authority(ME, frozenset(), None, supervisor=False, admin=False)


def entry(
    *, person: int = LEARNER, employer: int | None = EMPLOYER, status: str = "pending", kind: str = "live",
    reversed_: bool = False, admin_of_employer: bool = False,
) -> rules.EntryFacts:  # fmt: skip
    return rules.EntryFacts(99, person, employer, status, kind, reversed_, admin_of_employer)


def admins(**facts: Any) -> rules.EntryFacts:
    """An entry of one of the employer's administrators (not the caller unless `person=ME`)."""
    return entry(admin_of_employer=True, **facts)


# A bureau person who is also an administrator of the employer.
both = rules.Authority(ME, frozenset({EMPLOYER}), BUREAU, supervisor=True, admin=False)


CASES: list[
    tuple[str, rules.Authority, str, rules.EntryFacts, type[DomainError] | tuple[str, int | None]]
] = [
    ("employer approves its staff", employer_admin, "approve", entry(), ("employer_admin", EMPLOYER)),
    ("employer rejects its staff", employer_admin, "reject", entry(), ("employer_admin", EMPLOYER)),
    ("employer never sees another's staff", employer_admin, "approve", entry(employer=OTHER), NotFound),
    ("employer never sees no-employer learners", employer_admin, "approve", entry(employer=None), NotFound),
    ("own entry", employer_admin, "approve", entry(person=ME), Forbidden),
    ("own entry, revoke", employer_admin, "revoke", entry(person=ME, status="registered"), Forbidden),
    ("own entry, bureau", hr_bureau, "override", entry(person=ME, status="rejected"), Forbidden),
    ("employer does not override", employer_admin, "override", entry(status="rejected"), Forbidden),
    (
        "employer revokes its staff",
        employer_admin,
        "revoke",
        entry(status="registered"),
        ("employer_admin", EMPLOYER),
    ),
    ("bureau approves no-employer", hr_bureau, "approve", entry(employer=None), ("bureau", BUREAU)),
    ("bureau does not approve for an employer", hr_bureau, "approve", entry(), Forbidden),
    ("bureau revokes anyone's", hr_bureau, "revoke", entry(status="registered"), ("bureau", BUREAU)),
    ("bureau overrides", hr_bureau, "override", entry(status="rejected"), ("bureau", BUREAU)),
    ("admin revokes", admin, "revoke", entry(status="registered"), ("admin", None)),
    ("admin overrides", admin, "override", entry(status="rejected", employer=None), ("admin", None)),
    ("admin does not approve", admin, "approve", entry(employer=None), Forbidden),
    ("industry department reads only", industry_dept, "approve", entry(employer=None), Forbidden),
    ("industry department does not revoke", industry_dept, "revoke", entry(status="registered"), Forbidden),
    ("a learner sees nothing", learner, "approve", entry(), NotFound),
    # Fraud 21 without a dead end: an employer administrator's own entries are decided by another
    # administrator of the employer or by the HR bureau; never by themself, never for ordinary staff.
    ("a colleague approves an admin's", employer_admin, "approve", admins(), ("employer_admin", EMPLOYER)),
    ("bureau approves an admin's", hr_bureau, "approve", admins(), ("bureau", BUREAU)),
    ("bureau rejects an admin's", hr_bureau, "reject", admins(), ("bureau", BUREAU)),
    ("the admin's own, still refused", employer_admin, "approve", admins(person=ME), Forbidden),
    ("the admin's own rejection, refused", employer_admin, "reject", admins(person=ME), Forbidden),
    ("the bureau's own, refused", hr_bureau, "approve", entry(person=ME, employer=None), Forbidden),
    ("bureau-and-admin's own, refused", both, "approve", admins(person=ME), Forbidden),
    ("bureau-and-admin acts as employer", both, "approve", admins(), ("employer_admin", EMPLOYER)),
    ("bureau-and-admin, other's admin", both, "approve", admins(employer=OTHER), ("bureau", BUREAU)),
    ("bureau-and-admin, other's staff", both, "approve", entry(employer=OTHER), Forbidden),
    ("industry department does not approve an admin's", industry_dept, "approve", admins(), Forbidden),
    ("admin does not approve an admin's", admin, "approve", admins(), Forbidden),
    ("another employer never sees an admin's", employer_admin, "approve", admins(employer=OTHER), NotFound),
    ("bureau: an admin's, not pending", hr_bureau, "approve", admins(status="registered"), Conflict),
    ("bureau: an admin's, reversed", hr_bureau, "approve", admins(reversed_=True), Conflict),
    ("not pending", employer_admin, "approve", entry(status="registered"), Conflict),
    ("rejected is not approved again", employer_admin, "approve", entry(status="rejected"), Conflict),
    ("revoked is final", hr_bureau, "revoke", entry(status="revoked"), Conflict),
    ("override needs a rejection", hr_bureau, "override", entry(status="registered"), Conflict),
    ("a reversal", employer_admin, "approve", entry(kind="reversal"), Conflict),
    ("a reversed entry", employer_admin, "approve", entry(reversed_=True), Conflict),
]


@pytest.mark.parametrize(
    ("who", "action", "facts", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_who_may_decide_what(
    who: rules.Authority,
    action: str,
    facts: rules.EntryFacts,
    expected: type[DomainError] | tuple[str, int | None],
) -> None:
    if isinstance(expected, tuple):
        assert rules.check(who, action, facts) == expected
        assert action in rules.allowed(who, facts)
    else:
        with pytest.raises(expected):
            rules.check(who, action, facts)
        assert action not in rules.allowed(who, facts)


@pytest.mark.parametrize(
    ("employer", "learner_is_admin", "expected"),
    [(None, False, True), (EMPLOYER, True, True), (EMPLOYER, False, False)],
)
def test_the_bureau_decides_learners_without_an_employer_and_employer_administrators(
    employer: int | None, learner_is_admin: bool, expected: bool
) -> None:
    assert rules.bureau_decides(employer, learner_is_admin) is expected


def test_the_bureau_decides_an_administrators_entry_in_a_bulk_call_but_not_their_staffs() -> None:
    admins = rules.EntryFacts(5, 3, EMPLOYER, "pending", "live", False, True)
    staff = rules.EntryFacts(6, 4, EMPLOYER, "pending", "live", False, False)
    rules.check_all(hr_bureau, "approve", [admins], missing=())
    with pytest.raises(Forbidden) as refused:
        rules.check_all(hr_bureau, "approve", [admins, staff], missing=())
    assert refused.value.details == {"reason": "not_yours_to_decide", "entry_ids": [6]}


def test_one_call_is_refused_whole_naming_every_entry_not_found_first() -> None:
    staff, outsider = entry(), rules.EntryFacts(7, LEARNER, OTHER, "pending", "live", False)
    with pytest.raises(NotFound) as found:
        rules.check_all(employer_admin, "approve", [staff, outsider], missing={5})
    assert found.value.details == {"entry_ids": [5, 7]}
    decided = rules.EntryFacts(8, LEARNER, EMPLOYER, "registered", "live", False)
    with pytest.raises(Conflict) as conflict:
        rules.check_all(
            employer_admin,
            "approve",
            [staff, decided, rules.EntryFacts(9, 3, EMPLOYER, "rejected", "live", False)],
            missing=(),
        )
    assert conflict.value.details == {"reason": "state", "entry_ids": [8, 9]}
    rules.check_all(employer_admin, "approve", [staff], missing=())


T = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_fast_and_bulk_approvals_are_flagged_by_the_policys_thresholds() -> None:
    posted = [(1, T), (2, T - timedelta(seconds=30)), (3, T - timedelta(hours=1))]
    now = T + timedelta(seconds=20)
    flags = {f.code: f for f in rules.approval_flags(posted, now, min_seconds=60, bulk_flag_size=2)}
    assert set(flags) == {"approval_too_fast", "approval_bulk"}
    assert flags["approval_too_fast"].detail["seconds_after_posting"] == {"1": 20.0, "2": 50.0}
    assert flags["approval_bulk"].detail == {"count": 3, "threshold": 2}
    assert rules.approval_flags(posted, now, min_seconds=10, bulk_flag_size=3) == []
