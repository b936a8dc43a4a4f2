"""The credit policy is versioned data: every field validated with its name, unknown fields refused, and
what to_dict gives back reads in again unchanged."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from catalog.credit.policy import CreditPolicy
from infra.errors import Invalid


def test_the_built_in_policy_holds_the_domain_defaults() -> None:
    policy = CreditPolicy()
    assert policy.version == 0
    assert (policy.minutes_per_xueshi, policy.rounding_unit, policy.daily_cap_xueshi) == (
        45,
        Decimal("0.5"),
        Decimal("8"),
    )
    assert (policy.live_presence_threshold, policy.check_full_ratio, policy.check_half_ratio) == (
        0.85,
        0.75,
        0.5,
    )
    assert (
        policy.annual_total_xueshi,
        policy.annual_public_min_xueshi,
        policy.annual_professional_min_xueshi,
    ) == (
        Decimal(90),
        Decimal(30),
        Decimal(60),
    )


def test_to_dict_is_json_and_reads_back_unchanged() -> None:
    policy = CreditPolicy.from_dict(
        {
            "rounding_unit": "0.25",
            "daily_cap_xueshi": 6,
            "heartbeat_period_s": 2,
            "live_below_threshold": "pro_rata",
        },
        version=4,
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert data["rounding_unit"] == "0.25"
    assert data["daily_cap_xueshi"] == "6"
    assert data["version"] == 4
    assert CreditPolicy.from_dict(data, version=4) == policy


def test_missing_fields_take_the_defaults_and_the_version_is_the_argument() -> None:
    policy = CreditPolicy.from_dict({"version": 99, "minutes_per_xueshi": 50}, version=2)
    assert policy == CreditPolicy(version=2, minutes_per_xueshi=50)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.1", Decimal("0.1")),
        (0.25, Decimal("0.25")),
        ("0.50", Decimal("0.5")),
        (1, Decimal("1")),
        ("1.0", Decimal("1")),
    ],
)
def test_rounding_unit_accepts_the_four_units_however_spelled(value: Any, expected: Decimal) -> None:
    unit = CreditPolicy.from_dict({"rounding_unit": value}, version=1).rounding_unit
    assert unit == expected
    assert str(unit) == str(expected)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"minutes_per_xueshi": 0}, "minutes_per_xueshi"),
        ({"minutes_per_xueshi": 241}, "minutes_per_xueshi"),
        ({"minutes_per_xueshi": 45.0}, "minutes_per_xueshi"),
        ({"minutes_per_xueshi": True}, "minutes_per_xueshi"),
        ({"minutes_per_xueshi": "45"}, "minutes_per_xueshi"),
        ({"rounding_unit": "0.3"}, "rounding_unit"),
        ({"rounding_unit": "half"}, "rounding_unit"),
        ({"rounding_unit": "NaN"}, "rounding_unit"),
        ({"rounding_unit": None}, "rounding_unit"),
        ({"daily_cap_xueshi": 0}, "daily_cap_xueshi"),
        ({"daily_cap_xueshi": "-1"}, "daily_cap_xueshi"),
        ({"daily_cap_xueshi": "25"}, "daily_cap_xueshi"),
        ({"daily_cap_xueshi": "Infinity"}, "daily_cap_xueshi"),
        ({"live_presence_threshold": 0}, "live_presence_threshold"),
        ({"live_presence_threshold": 1.01}, "live_presence_threshold"),
        ({"live_presence_threshold": float("nan")}, "live_presence_threshold"),
        ({"live_presence_threshold": "0.85"}, "live_presence_threshold"),
        ({"live_below_threshold": "half"}, "live_below_threshold"),
        ({"live_below_threshold": 0}, "live_below_threshold"),
        ({"check_full_ratio": 0}, "check_full_ratio"),
        ({"check_half_ratio": 1.5}, "check_half_ratio"),
        ({"check_full_ratio": 0.6, "check_half_ratio": 0.7}, "check_half_ratio"),
        ({"checks_per_45_min": -1}, "checks_per_45_min"),
        ({"check_window_s": 5}, "check_window_s"),
        ({"min_answer_ms": -1}, "min_answer_ms"),
        ({"replay_completion_threshold": 0}, "replay_completion_threshold"),
        ({"max_playback_rate": 0}, "max_playback_rate"),
        ({"max_playback_rate": 5}, "max_playback_rate"),
        ({"seek_tolerance_s": -0.1}, "seek_tolerance_s"),
        ({"heartbeat_period_s": 0}, "heartbeat_period_s"),
        ({"heartbeat_period_s": 601}, "heartbeat_period_s"),
        ({"once_per_session_per_year": 1}, "once_per_session_per_year"),
        ({"annual_total_xueshi": 0}, "annual_total_xueshi"),
        ({"annual_public_min_xueshi": -1}, "annual_public_min_xueshi"),
        ({"annual_total_xueshi": 50, "annual_professional_min_xueshi": 60}, "annual_professional_min_xueshi"),
    ],
    ids=lambda v: json.dumps(v, default=str) if isinstance(v, dict) else str(v),
)
def test_a_bad_field_is_invalid_and_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as raised:
        CreditPolicy.from_dict(data, version=1)
    assert raised.value.field == field
    assert raised.value.message


@pytest.mark.parametrize("data", [[], "x", None])
def test_a_policy_that_is_not_an_object_is_invalid(data: Any) -> None:
    with pytest.raises(Invalid):
        CreditPolicy.from_dict(data, version=1)


@pytest.mark.parametrize("version", [-1, True, "1"])
def test_a_bad_version_is_invalid(version: Any) -> None:
    with pytest.raises(Invalid) as raised:
        CreditPolicy.from_dict({}, version=version)
    assert raised.value.field == "version"


@pytest.mark.parametrize(
    ("data", "attr", "expected"),
    [
        ({"minutes_per_xueshi": 1}, "minutes_per_xueshi", 1),
        ({"minutes_per_xueshi": 240}, "minutes_per_xueshi", 240),
        ({"live_presence_threshold": 1}, "live_presence_threshold", 1.0),
        ({"check_full_ratio": 0.5, "check_half_ratio": 0.5}, "check_half_ratio", 0.5),
        ({"heartbeat_period_s": 1}, "heartbeat_period_s", 1),
        ({"heartbeat_period_s": 600}, "heartbeat_period_s", 600),
        ({"daily_cap_xueshi": 6.5}, "daily_cap_xueshi", Decimal("6.5")),
        ({"max_playback_rate": 2}, "max_playback_rate", 2.0),
        ({"checks_per_45_min": 0}, "checks_per_45_min", 0),
    ],
)
def test_values_at_the_edges_of_their_ranges_are_accepted(
    data: dict[str, Any], attr: str, expected: Any
) -> None:
    assert getattr(CreditPolicy.from_dict(data, version=1), attr) == expected
