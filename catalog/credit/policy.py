"""The credit policy: versioned data (DOMAIN §3 R1–R30 defaults), validated field by field, never constants
in code. Stored by version; every ledger entry records the version it was computed under."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from infra.errors import Invalid

ROUNDING_UNITS = (Decimal("0.1"), Decimal("0.25"), Decimal("0.5"), Decimal("1"))
BELOW_THRESHOLD_RULES = ("none", "pro_rata")


@dataclass(frozen=True)
class CreditPolicy:
    """One version of the rules. Defaults are the built-in version 0, used until a version is stored."""

    version: int = 0  # 0 = the built-in default before any version is stored
    minutes_per_xueshi: int = 45  # R5
    rounding_unit: Decimal = Decimal("0.5")  # R5: floor to this unit
    daily_cap_xueshi: Decimal = Decimal("8")  # R6, per person per Beijing day
    live_presence_threshold: float = 0.85  # R9
    live_below_threshold: str = "none"  # R9: "none" (0 credit) | "pro_rata"
    check_full_ratio: float = 0.75  # R11: ratio ≥ this → full credit
    check_half_ratio: float = 0.50  # R11: ratio ≥ this → half, below → none
    checks_per_45_min: int = 3  # R10 (replays: at least this many per 45 min of media)
    check_window_s: int = 60  # R10
    min_answer_ms: int = 800  # faster than a human can see and click: not counted, flagged (fraud 3)
    replay_completion_threshold: float = 0.95  # R13
    max_playback_rate: float = 1.0  # R15
    seek_tolerance_s: float = 3.0  # media jitter allowed between heartbeats (R14/R15)
    heartbeat_period_s: int = 30  # R16: gap > 2 × period closes an interval
    once_per_session_per_year: bool = True  # R24
    annual_total_xueshi: Decimal = Decimal("90")  # R1
    annual_public_min_xueshi: Decimal = Decimal("30")  # R2
    annual_professional_min_xueshi: Decimal = Decimal("60")  # R2
    # Employer approval (fraud 21): flagged, never blocked.
    approval_min_seconds: int = 60  # an approval sooner than this after the entry was posted is flagged
    approval_bulk_flag_size: int = 200  # one bulk approval of more entries than this is flagged
    # Mentorship (R22, R26, fraud 20).
    mentor_cap: int = 10  # distinct mentees per mentor per year
    mentorship_award_xueshi: Decimal = Decimal("10")  # fixed award for a completed year, 专业
    # Offline training (R8, fraud 16): the venue's QR code.
    offline_code_period_s: int = 30  # a fresh signed code this often
    offline_code_valid_s: int = 60  # a code (photo, forwarded link) stops working after this

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], version: int) -> CreditPolicy:
        """A policy from stored or submitted parameters. Missing keys take the built-in default; a
        `version` key in `data` is ignored (the store assigns versions). Raises Invalid(field=...)."""
        if not isinstance(data, Mapping):
            raise Invalid("a credit policy is a JSON object", field="policy")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise Invalid("version must be an integer ≥ 0", field="version")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise Invalid(f"unknown credit policy field: {unknown[0]}", field=unknown[0])
        base = cls()
        values: dict[str, Any] = {"version": version}
        for name, check in _FIELDS.items():
            values[name] = check(name, data[name]) if name in data else getattr(base, name)
        policy = cls(**values)
        if policy.check_half_ratio > policy.check_full_ratio:
            raise Invalid(
                "the half-credit check ratio cannot exceed the full-credit ratio", field="check_half_ratio"
            )
        if policy.offline_code_valid_s < policy.offline_code_period_s:
            raise Invalid(
                "a venue code must stay valid at least as long as it is shown", field="offline_code_valid_s"
            )
        for name in ("annual_public_min_xueshi", "annual_professional_min_xueshi"):
            if getattr(policy, name) > policy.annual_total_xueshi:
                raise Invalid("a category minimum cannot exceed the annual total", field=name)
        return policy

    def to_dict(self) -> dict[str, Any]:
        """JSON types: Decimals as strings (exact), floats, ints, bools, strings."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Decimal) else value
        return out


# -- validation --------------------------------------------------------------------------------------


def _int(lo: int, hi: int) -> Any:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{name} must be an integer", field=name)
        if not lo <= value <= hi:
            raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
        return value

    return check


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Any:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{name} must be a number", field=name)
        number = float(value)
        if not math.isfinite(number):
            raise Invalid(f"{name} must be a finite number", field=name)
        if (number <= lo if lo_open else number < lo) or number > hi:
            interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
            raise Invalid(f"{name} must be in {interval}", field=name)
        return number

    return check


def _decimal(lo: Decimal, hi: Decimal, *, lo_open: bool = False) -> Any:
    def check(name: str, value: Any) -> Decimal:
        number = _to_decimal(name, value)
        if (number <= lo if lo_open else number < lo) or number > hi:
            interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
            raise Invalid(f"{name} must be in {interval}", field=name)
        return number

    return check


def _to_decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise Invalid(f'{name} must be a decimal number (a string such as "0.5" or a number)', field=name)
    try:
        # A float goes through its shortest repr, so 0.1 is Decimal("0.1"), not its binary expansion.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise Invalid(f"{name} must be a decimal number", field=name) from None
    if not number.is_finite():
        raise Invalid(f"{name} must be a finite number", field=name)
    return number


def _rounding_unit(name: str, value: Any) -> Decimal:
    number = _to_decimal(name, value)
    if number not in ROUNDING_UNITS:
        raise Invalid(f"{name} must be one of {', '.join(str(u) for u in ROUNDING_UNITS)}", field=name)
    return next(u for u in ROUNDING_UNITS if u == number)  # the canonical spelling ("0.5", not "0.50")


def _choice(*choices: str) -> Any:
    def check(name: str, value: Any) -> str:
        if value not in choices or not isinstance(value, str):
            raise Invalid(f"{name} must be one of {', '.join(choices)}", field=name)
        return value

    return check


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false", field=name)
    return value


_FIELDS: dict[str, Any] = {
    "minutes_per_xueshi": _int(1, 240),
    "rounding_unit": _rounding_unit,
    "daily_cap_xueshi": _decimal(Decimal(0), Decimal(24), lo_open=True),
    "live_presence_threshold": _float(0.0, 1.0, lo_open=True),
    "live_below_threshold": _choice(*BELOW_THRESHOLD_RULES),
    "check_full_ratio": _float(0.0, 1.0, lo_open=True),
    "check_half_ratio": _float(0.0, 1.0, lo_open=True),
    "checks_per_45_min": _int(0, 20),
    "check_window_s": _int(10, 600),
    "min_answer_ms": _int(0, 10_000),
    "replay_completion_threshold": _float(0.0, 1.0, lo_open=True),
    "max_playback_rate": _float(0.0, 4.0, lo_open=True),
    "seek_tolerance_s": _float(0.0, 60.0),
    "heartbeat_period_s": _int(1, 600),
    "once_per_session_per_year": _bool,
    "annual_total_xueshi": _decimal(Decimal(0), Decimal(1000), lo_open=True),
    "annual_public_min_xueshi": _decimal(Decimal(0), Decimal(1000)),
    "annual_professional_min_xueshi": _decimal(Decimal(0), Decimal(1000)),
    "approval_min_seconds": _int(0, 86_400),
    "approval_bulk_flag_size": _int(1, 100_000),
    "mentor_cap": _int(1, 100),
    "mentorship_award_xueshi": _decimal(Decimal(0), Decimal(200)),
    "offline_code_period_s": _int(5, 300),
    "offline_code_valid_s": _int(5, 600),
}
