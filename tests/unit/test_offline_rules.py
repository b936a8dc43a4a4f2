"""The pure rules of offline training: the venue's signed codes, the hours of a session, its window, and the
credit of signed intervals (catalog.offline.rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.credit.policy import CreditPolicy
from catalog.offline import rules
from infra.errors import Invalid

KEY = "unit-test-secret"
POLICY = CreditPolicy()  # codes every 30 s, valid 60 s; 45 min per 学时, to 0.5
T = datetime(2026, 3, 2, 1, 0, 10, tzinfo=UTC)  # 09:00:10 in Beijing, 10 s into a 30 s period


def test_every_display_shows_the_same_code_in_a_period_and_a_new_one_after_it() -> None:
    a = rules.issue(KEY, 7, T, POLICY)
    b = rules.issue(KEY, 7, T + timedelta(seconds=19), POLICY)
    c = rules.issue(KEY, 7, T + timedelta(seconds=20), POLICY)
    assert a == b
    assert c.slot == a.slot + 30
    assert c.text != a.text
    assert (a.issued_at, a.next_at, a.expires_at) == (
        T - timedelta(seconds=10),
        T + timedelta(seconds=20),
        T + timedelta(seconds=50),
    )
    assert rules.CODE_RE.match(a.text)


@pytest.mark.parametrize(
    ("after_s", "accepted"),
    [(0, True), (49.999, True), (50, False), (3600, False)],
    ids=["at issue", "just before expiry", "at expiry", "an hour later"],
)
def test_a_code_is_accepted_until_its_validity_ends(after_s: float, accepted: bool) -> None:
    code = rules.issue(KEY, 7, T, POLICY)
    at = T + timedelta(seconds=after_s)
    if accepted:
        assert rules.verify(KEY, 7, code.text, at, POLICY) == code.slot
    else:
        with pytest.raises(rules.CodeExpired):
            rules.verify(KEY, 7, code.text, at, POLICY)


def _forgeries() -> dict[str, str]:
    genuine = rules.issue(KEY, 7, T, POLICY).text
    slot, tag = genuine.split(".")
    return {
        "another session's code": rules.issue(KEY, 8, T, POLICY).text,
        "signed with another key": rules.issue("another-key", 7, T, POLICY).text,
        "tag changed": f"{slot}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}",
        "slot moved back": f"{int(slot) - 30}.{tag}",
        "from the future": rules.issue(KEY, 7, T + timedelta(minutes=5), POLICY).text,
    }


@pytest.mark.parametrize("name", list(_forgeries()))
def test_a_forged_or_foreign_code_is_invalid(name: str) -> None:
    with pytest.raises(rules.CodeInvalid) as refused:
        rules.verify(KEY, 7, _forgeries()[name], T, POLICY)
    assert refused.value.field == "code"
    assert (refused.value.details or {})["message_zh"]


@pytest.mark.parametrize(
    "text", ["", "abc", "1.x", "１２.abcdefghijklmnopqrstuvwx", "99999999999.abcdefghijklmnopqrstuvwx"]
)
def test_what_is_not_shaped_like_a_code_is_invalid_input(text: str) -> None:
    with pytest.raises(Invalid):
        rules.verify(KEY, 7, text, T, POLICY)


def test_the_window_is_a_correction_else_actual_times_else_the_schedule() -> None:
    schedule = (T, T + timedelta(hours=3))
    actual = (T + timedelta(minutes=5), T + timedelta(hours=2))
    corrected = (T, T + timedelta(hours=1))
    assert rules.window(schedule, *actual, corrected, 4) == rules.Window(corrected, "correction", 4)
    assert rules.window(schedule, *actual, None, None) == rules.Window(actual, "actual", None)
    assert rules.window(schedule, actual[0], None, None, None) == rules.Window(schedule, "schedule", None)


def test_sign_in_opens_15_minutes_early_and_sign_out_closes_an_hour_after_the_end() -> None:
    win = rules.window((T, T + timedelta(hours=3)), None, None, None, None)
    h = rules.hours(T, win)
    rules.check_sign_in_time(h, T - timedelta(minutes=15))
    with pytest.raises(rules.SignInNotOpen):
        rules.check_sign_in_time(h, T - timedelta(minutes=15, seconds=1))
    with pytest.raises(rules.SignInClosed):
        rules.check_sign_in_time(h, T + timedelta(hours=3))
    rules.check_sign_out_time(h, T + timedelta(hours=3, minutes=59))
    with pytest.raises(rules.SignOutClosed):
        rules.check_sign_out_time(h, T + timedelta(hours=4))
    with pytest.raises(rules.VenueClosed):
        rules.check_venue_open(h, T + timedelta(hours=4))


def test_credit_is_the_union_of_intervals_inside_the_window_pro_rata() -> None:
    win = (T, T + timedelta(hours=3))
    intervals = [
        (T - timedelta(minutes=20), T + timedelta(minutes=50)),  # early: clipped at the start
        (T + timedelta(minutes=40), T + timedelta(minutes=70)),  # overlaps the first (two phones): once
        (T + timedelta(minutes=120), T + timedelta(hours=4)),  # stayed late: clipped at the end
    ]
    credit = rules.offline_credit(intervals, win, POLICY)
    assert credit.present_s == (70 + 60) * 60
    assert (credit.minutes, credit.xueshi) == (Decimal("130.0000"), Decimal("2.5"))  # floor(130/45, 0.5)
    assert (credit.kind, credit.fraction, credit.threshold_met) == ("offline", 1.0, True)
    assert credit.day_seconds == {date(2026, 3, 2): 130 * 60}


def test_a_short_stay_earns_its_minutes_and_nothing_outside_the_window_counts() -> None:
    win = (T, T + timedelta(hours=3))
    assert rules.offline_credit([(T, T + timedelta(minutes=30))], win, POLICY).xueshi == Decimal("0.5")
    outside = rules.offline_credit([(T - timedelta(hours=2), T)], win, POLICY)
    assert (outside.present_s, outside.xueshi) == (0.0, Decimal("0.0"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "action"),
        ({}, "action"),
        ({"action": "enter", "code": "1.x"}, "action"),
        ({"action": "sign_in"}, "code"),
        ({"action": "sign_in", "code": ""}, "code"),
        ({"action": "sign_in", "code": "x" * 65}, "code"),
        ({"action": "sign_out", "code": "1.x", "who": 3}, "who"),
    ],
)
def test_a_check_in_request_names_its_bad_field(body: object, field: str) -> None:
    with pytest.raises(Invalid) as refused:
        rules.act(body)
    assert refused.value.field == field


def test_a_check_in_request_gives_its_action_and_code() -> None:
    assert rules.act({"action": "sign_out", "code": "1.x"}) == ("sign_out", "1.x")
