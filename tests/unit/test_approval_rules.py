"""Who may decide what about a ledger entry (catalog.credit.approval_rules), table-driven, and the
fraud-21 flags an approval raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    reversed_: bool = False,
) -> rules.EntryFacts:  # fmt: skip
    return rules.EntryFacts(99, person, employer, status, kind, reversed_)


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
