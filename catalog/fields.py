"""Reading typed fields out of decoded JSON bodies and query strings; every failure names its field.

Pure: raises infra.errors.Invalid, knows nothing of HTTP or the database. With infra.http.read_json this
is the input boundary of docs/security.md ("Input and headers"): integers within SQL's bigint and their
field's range, ASCII digits only; text through infra.text.normalise; instants in years 1900–2200 with a
real-world UTC offset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from infra.errors import Invalid
from infra.text import UnsafeText, has_lone_surrogate, normalise

E = TypeVar("E", bound=StrEnum)

# [0-9], not \d: Python's \d also matches other scripts' digits (e.g. Arabic-Indic "١٣٨...").
PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")  # mainland mobile numbers
USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")  # 统一社会信用代码
REGION_RE = re.compile(r"^[0-9]{6}$")  # GB/T 2260 administrative division code
MISSING = object()

# SQL's BIGINT: every integer that reaches the database fits, so none overflows a driver (a 500).
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
# Instants outside these years are typos or probes; inside them every conversion stays in range.
YEAR_MIN = 1900
YEAR_MAX = 2200
# Real UTC offsets run from -12:00 to +14:00; Python would accept up to ±23:59.
OFFSET_MAX = timedelta(hours=14)

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
NAME_MAX = 100
ORG_NAME_MAX = 200
SECTOR_MAX = 64  # an organization's sector (行业)
PASSWORD_MIN = 8
PASSWORD_MAX = 128
INDUSTRY_MAX = 100
TAG_MAX = 50
TAGS_MAX = 20
PAGE_SIZE_MAX = 100


def _get(body: Mapping[str, Any], name: str, required: bool) -> Any:
    value = body.get(name, MISSING)
    if value is MISSING and required:
        raise Invalid(f"{name} is required", field=name)
    return value


def text(
    body: Mapping[str, Any],
    name: str,
    *,
    max_len: int,
    min_len: int = 1,
    required: bool = True,
    default: str | None = None,
    strip: bool = True,
    multiline: bool = False,
) -> str | None:
    """A string field, normalised by infra.text.normalise (NFC, no bidi or control characters; line breaks
    kept only when `multiline`), then stripped and measured. Absent gives `default`; JSON null is accepted
    only when not required."""
    value = _get(body, name, required)
    if value is MISSING:
        return default
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string", field=name)
    value = clean(value, name, multiline=multiline)
    if strip:
        value = value.strip()
    if len(value) < min_len:
        raise Invalid(
            f"{name} must be at least {min_len} characters" if min_len > 1 else f"{name} must not be empty",
            field=name,
        )
    if len(value) > max_len:
        raise Invalid(f"{name} must be at most {max_len} characters", field=name)
    return value


def clean(value: str, name: str, *, multiline: bool = False) -> str:
    """infra.text.normalise, its refusal (a lone surrogate) as Invalid naming the field."""
    try:
        return normalise(value, multiline=multiline)
    except UnsafeText as exc:
        raise Invalid(f"{name} {exc}", field=name) from None


def password(body: Mapping[str, Any], name: str = "password", *, min_len: int = 1) -> str:
    """A password exactly as typed: not normalised or stripped (it is only ever hashed and compared), but
    like every string refused when it holds a lone surrogate, which no hash function can encode."""
    value = _get(body, name, True)
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string", field=name)
    if has_lone_surrogate(value):
        raise Invalid(f"{name} contains a lone surrogate (not valid Unicode text)", field=name)
    if len(value) < min_len:
        raise Invalid(
            f"{name} must be at least {min_len} characters" if min_len > 1 else f"{name} must not be empty",
            field=name,
        )
    if len(value) > PASSWORD_MAX:
        raise Invalid(f"{name} must be at most {PASSWORD_MAX} characters", field=name)
    return value


def required_text(
    body: Mapping[str, Any], name: str, *, max_len: int, min_len: int = 1, strip: bool = True
) -> str:
    value = text(body, name, max_len=max_len, min_len=min_len, strip=strip)
    assert value is not None
    return value


def integer(
    body: Mapping[str, Any],
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    required: bool = True,
    nullable: bool = False,
) -> int | None:
    """A JSON integer within [minimum, maximum], which default to SQL's BIGINT range (ids start at 1)."""
    value = _get(body, name, required)
    if value is MISSING or (value is None and nullable):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer", field=name)
    low = BIGINT_MIN if minimum is None else max(minimum, BIGINT_MIN)
    high = BIGINT_MAX if maximum is None else min(maximum, BIGINT_MAX)
    if value < low:
        raise Invalid(f"{name} must be ≥ {low}", field=name)
    if value > high:
        raise Invalid(f"{name} must be ≤ {high}", field=name)
    return value


def number(body: Mapping[str, Any], name: str, *, minimum: float, maximum: float) -> float:
    """A required finite JSON number (an integer is fine) within [minimum, maximum]."""
    value = _get(body, name, True)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name} must be a number", field=name)
    number = float(value)
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise Invalid(f"{name} must be between {minimum:g} and {maximum:g}", field=name)
    return number


def boolean(body: Mapping[str, Any], name: str) -> bool:
    value = _get(body, name, True)
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false", field=name)
    return value


def identifier(body: Mapping[str, Any], name: str) -> int:
    value = integer(body, name, minimum=1, maximum=BIGINT_MAX)
    assert value is not None
    return value


def choice(body: Mapping[str, Any], name: str, kind: type[E], *, required: bool = True) -> E | None:
    value = _get(body, name, required)
    if value is MISSING:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(v.value for v in kind)
        raise Invalid(f"{name} must be one of: {allowed}", field=name) from None


def required_choice(body: Mapping[str, Any], name: str, kind: type[E]) -> E:
    value = choice(body, name, kind)
    assert value is not None
    return value


def credit_hours(body: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    """学时: a number ≥ 0 and < 100000 with at most one decimal place (Numeric(6,1))."""
    value = _get(body, name, required)
    if value is MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"{name} must be a number", field=name)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{name} must be a number", field=name) from None
    if not amount.is_finite() or amount < 0 or amount >= 100_000:
        raise Invalid(f"{name} must be between 0 and 99999.9", field=name)
    if amount != amount.quantize(Decimal("0.1")):
        raise Invalid(f"{name} allows one decimal place", field=name)
    return amount.quantize(Decimal("0.1"))


def instant(
    body: Mapping[str, Any], name: str, *, required: bool = True, nullable: bool = False
) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset (e.g. 2026-12-01T09:00:00+08:00), returned in UTC."""
    value = _get(body, name, required)
    if value is MISSING or (value is None and nullable):
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be an ISO 8601 date-time string", field=name)
    return parse_instant(value, name)


def parse_instant(value: str, name: str, *, allow_date: bool = False) -> datetime:
    """An ISO 8601 date-time with a UTC offset (or, with `allow_date`, a date meaning its UTC midnight),
    in UTC. Refused: other than ASCII, years outside YEAR_MIN..YEAR_MAX, offsets beyond ±14:00 — so
    that no later conversion or comparison can overflow."""
    if not value.isascii() or len(value) > 40:
        raise Invalid(f"{name} must be an ISO 8601 date-time", field=name)
    try:
        if allow_date and len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 date-time", field=name) from None
    offset = parsed.utcoffset()
    if offset is None:
        raise Invalid(f"{name} needs a UTC offset (e.g. +08:00 or Z)", field=name)
    if abs(offset) > OFFSET_MAX:
        raise Invalid(f"{name} has a UTC offset beyond ±14:00", field=name)
    if not YEAR_MIN <= parsed.year <= YEAR_MAX:
        raise Invalid(f"{name} must lie in the years {YEAR_MIN}–{YEAR_MAX}", field=name)
    return parsed.astimezone(UTC)


def id_list(body: Mapping[str, Any], name: str, *, max_items: int = 500) -> list[int]:
    value = _get(body, name, True)
    if not isinstance(value, list):
        raise Invalid(f"{name} must be a list of ids", field=name)
    if len(value) > max_items:
        raise Invalid(f"{name} may hold at most {max_items} ids", field=name)
    out: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= BIGINT_MAX:
            raise Invalid(f"{name} must hold positive integer ids", field=name)
        if item not in out:
            out.append(item)
    return out


def tags(body: Mapping[str, Any], name: str, *, required: bool = False) -> list[str] | None:
    value = _get(body, name, required)
    if value is MISSING:
        return None
    if not isinstance(value, list) or len(value) > TAGS_MAX:
        raise Invalid(f"{name} must be a list of at most {TAGS_MAX} strings", field=name)
    out: list[str] = []
    for item in value:
        tag = clean(item, name).strip() if isinstance(item, str) else ""
        if not 0 < len(tag) <= TAG_MAX:
            raise Invalid(f"{name} must hold strings of 1–{TAG_MAX} characters", field=name)
        if tag not in out:
            out.append(tag)
    return out


def json_object(body: Mapping[str, Any], name: str, *, max_keys: int = 20) -> dict[str, str] | None:
    """A flat object of string/number values (external meeting ids), stored as strings."""
    value = _get(body, name, False)
    if value is MISSING:
        return None
    if not isinstance(value, dict) or len(value) > max_keys:
        raise Invalid(f"{name} must be an object of at most {max_keys} keys", field=name)
    out: dict[str, str] = {}
    for key, item in value.items():
        # An integer is bounded before its text is made: str() of a huge int is slow (and limited).
        fits = (isinstance(item, str) and len(item) <= 200) or (
            isinstance(item, int) and not isinstance(item, bool) and BIGINT_MIN <= item <= BIGINT_MAX
        )
        if not fits or len(key) > 50:
            raise Invalid(f"{name}.{key} must be a string or integer", field=f"{name}.{key}")
        out[clean(key, name)] = clean(item, f"{name}.{key}") if isinstance(item, str) else str(item)
    return out


def phone(body: Mapping[str, Any], name: str = "phone") -> str:
    value = required_text(body, name, max_len=20)
    if not PHONE_RE.match(value):
        raise Invalid(f"{name} must be a mainland mobile number of 11 digits", field=name)
    return value


def reject_unknown(body: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse keys we do not know, so a misspelt field is an error rather than silently ignored."""
    for key in body:
        if key not in allowed:
            raise Invalid(f"unknown field {key}", field=key)


@dataclass(frozen=True)
class Page:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def query_int(
    query: Mapping[str, str], name: str, *, default: int | None, minimum: int, maximum: int
) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only (str.isdigit also takes "٣" and "３"); 19 digits reach past BIGINT_MAX, no further.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise Invalid(f"{name} must be a positive integer", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise Invalid(f"{name} must be between {minimum} and {maximum}", field=name)
    return value


def query_text(query: Mapping[str, str], name: str, *, max_len: int) -> str:
    """A free-text query parameter (a search), normalised like a one-line field; "" when absent."""
    value = clean(query.get(name, ""), name).strip()
    if len(value) > max_len:
        raise Invalid(f"{name} must be at most {max_len} characters", field=name)
    return value


def page(query: Mapping[str, str], *, default_size: int = 20) -> Page:
    number = query_int(query, "page", default=1, minimum=1, maximum=1_000_000)
    size = query_int(query, "page_size", default=default_size, minimum=1, maximum=PAGE_SIZE_MAX)
    assert number is not None
    assert size is not None
    return Page(number, size)


def query_choice(query: Mapping[str, str], name: str, kind: type[E]) -> E | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    return choice({name: raw}, name, kind)
