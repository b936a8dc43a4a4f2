"""The supervision view's pure rules: who supervises which providers (catalog.supervision.scope) and when
a session is marked 超额 (catalog.supervision.reconcile, fraud 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.credit.policy import CreditPolicy
from catalog.domain import Caller, Role
from catalog.supervision import reconcile
from catalog.supervision.scope import OrgFacts, Scope, require_provider, require_sector, scope_of
from infra.errors import Forbidden

BUREAU, DEPT, DEPT2, UNSET, PROVIDER = 1, 2, 3, 4, 5
ORGS = {
    BUREAU: OrgFacts("hrss_bureau", None),
    DEPT: OrgFacts("industry_dept", "建筑"),
    DEPT2: OrgFacts("industry_dept", "卫生健康"),
    UNSET: OrgFacts("industry_dept", None),
    PROVIDER: OrgFacts("ce_base", "建筑"),
}


def caller(*roles: tuple[Role, int | None]) -> Caller:
    return Caller(7, None, frozenset(roles))


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        pytest.param([(Role.ADMIN, None)], Scope(True), id="admin-all"),
        pytest.param([(Role.BUREAU, BUREAU)], Scope(True), id="hrss-bureau-all"),
        pytest.param([(Role.BUREAU, DEPT)], Scope(False, frozenset({"建筑"})), id="industry-dept-its-sector"),
        pytest.param(
            [(Role.BUREAU, DEPT), (Role.BUREAU, DEPT2)],
            Scope(False, frozenset({"建筑", "卫生健康"})),
            id="two-departments-add-up",
        ),
        pytest.param([(Role.BUREAU, DEPT), (Role.BUREAU, BUREAU)], Scope(True), id="dept-and-bureau-all"),
        pytest.param([(Role.BUREAU, UNSET)], Scope(False, frozenset()), id="dept-without-sector-nobody"),
    ],
)
def test_scope_of_supervisors(roles: list[tuple[Role, int | None]], expected: Scope) -> None:
    assert scope_of(caller(*roles), ORGS) == expected


@pytest.mark.parametrize(
    "roles",
    [
        pytest.param([], id="nobody"),
        pytest.param([(Role.LEARNER, None)], id="learner"),
        pytest.param([(Role.PROVIDER_ADMIN, PROVIDER)], id="provider-admin"),
        pytest.param([(Role.EMPLOYER_ADMIN, 9)], id="employer-admin"),
        pytest.param([(Role.BUREAU, 99)], id="bureau-of-an-unknown-org"),
    ],
)
def test_everyone_else_supervises_nothing(roles: list[tuple[Role, int | None]]) -> None:
    with pytest.raises(Forbidden):
        scope_of(caller(*roles), ORGS)


def test_a_department_is_refused_other_sectors_and_their_providers() -> None:
    dept = Scope(False, frozenset({"建筑"}))
    require_sector(dept, "建筑")
    require_sector(dept, None)
    require_provider(dept, PROVIDER, "建筑")
    for check in (lambda: require_sector(dept, "卫生健康"), lambda: require_provider(dept, 6, "卫生健康")):
        with pytest.raises(Forbidden):
            check()
    with pytest.raises(Forbidden):
        require_provider(dept, 6, None)  # a provider without a sector is the bureau's alone
    require_provider(Scope(True), 6, None)


START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def facts(minutes: float | None, best: str, **more: int | None) -> reconcile.SessionFacts:
    window = None if minutes is None else (START, START + timedelta(minutes=minutes))
    values: dict[str, int | None] = {"credited": 1, "without_attendance": 0, "enrolled": 1, "capacity": None}
    values.update(more)
    return reconcile.SessionFacts(
        window=window,
        policies=(CreditPolicy(),),
        max_person_xs=Decimal(best),
        credited=int(values["credited"] or 0),
        without_attendance=int(values["without_attendance"] or 0),
        enrolled=int(values["enrolled"] or 0),
        capacity=values["capacity"],
    )


@pytest.mark.parametrize(
    ("f", "reasons"),
    [
        pytest.param(facts(90, "2.0"), [], id="90-min-2-xueshi-reconciles"),
        pytest.param(facts(90, "2.5"), ["duration"], id="90-min-2.5-xueshi-too-many"),
        pytest.param(facts(80, "1.5"), [], id="80-min-1.5-floor-to-half"),
        pytest.param(facts(44, "0.5"), [], id="44-min-allow-half"),
        pytest.param(facts(22, "0.5"), ["duration"], id="22-min-allow-none"),
        pytest.param(facts(None, "1.0"), ["not_held"], id="credited-never-held"),
        pytest.param(facts(None, "0", credited=0), [], id="never-held-nothing-credited"),
        pytest.param(facts(90, "2.0", without_attendance=1), ["attendance"], id="credited-without-evidence"),
        pytest.param(
            facts(90, "2.0", credited=3, enrolled=2), ["enrolled"], id="more-credited-than-enrolled"
        ),
        pytest.param(facts(90, "2.0", credited=3, enrolled=5, capacity=2), ["capacity"], id="over-capacity"),
        pytest.param(
            facts(45, "3.0", credited=2, without_attendance=1, enrolled=1, capacity=1),
            ["duration", "attendance", "enrolled", "capacity"],
            id="everything-at-once",
        ),
    ],
)
def test_reconciliation_reasons(f: reconcile.SessionFacts, reasons: list[str]) -> None:
    assert reconcile.reasons(f) == reasons


def test_the_most_lenient_policy_version_sets_the_limit() -> None:
    strict, lenient = CreditPolicy(minutes_per_xueshi=45), CreditPolicy(minutes_per_xueshi=30)
    assert reconcile.allowed_xueshi(90 * 60, [strict]) == Decimal("2.0")
    assert reconcile.allowed_xueshi(90 * 60, [strict, lenient]) == Decimal("3.0")


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([5.0], 90, 5.0),
        ([1.0, 2.0, 3.0], 50, 2.0),
        ([1.0, 2.0, 3.0], 90, 2.8),
        ([0.0, 10.0], 25, 2.5),
    ],
)
def test_percentiles_interpolate(values: list[float], p: float, expected: float | None) -> None:
    assert reconcile.percentile(values, p) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("name", "masked"), [("张三", "张*"), ("欧阳娜娜", "欧***"), ("李", "李*"), ("", "*"), (None, "*")]
)
def test_names_are_masked(name: str | None, masked: str) -> None:
    assert reconcile.mask_name(name) == masked


@pytest.mark.parametrize(
    ("caller_", "sees", "everything"),
    [
        pytest.param(Caller(7, None, frozenset({(Role.ADMIN, None)})), {10, 11}, True, id="admin"),
        pytest.param(Caller(7, None, frozenset({(Role.BUREAU, BUREAU)})), {10, 11}, True, id="hrss-bureau"),
        pytest.param(
            Caller(7, None, frozenset({(Role.BUREAU, DEPT)}), sector_providers=frozenset({10})),
            {10},
            False,
            id="industry-dept-its-sector's-providers",
        ),
        pytest.param(
            Caller(7, None, frozenset({(Role.BUREAU, UNSET)}), sector_providers=frozenset()),
            set(),
            False,
            id="industry-dept-without-a-sector",
        ),
        pytest.param(
            Caller(7, None, frozenset({(Role.LEARNER, None)}), sector_providers=frozenset({10})),
            set(),
            False,
            id="the-limit-is-no-grant-without-the-bureau-role",
        ),
        pytest.param(
            Caller(7, None, frozenset({(Role.PROVIDER_ADMIN, 10)})), set(), False, id="provider-admin"
        ),
    ],
)
def test_which_providers_a_caller_oversees_outside_the_supervision_view(
    caller_: Caller, sees: set[int], everything: bool
) -> None:
    assert {org for org in (10, 11) if caller_.supervises_provider(org)} == sees
    assert caller_.is_supervisor is everything
