"""The pure rules of certificates: serials and verification codes (random, from an alphabet people can read
back), what a certificate certifies (totals by 公需/专业 of registered entries), its status, and how a
name is masked for the public verification page. No SQL, no HTTP, no clock."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

COURSE = "course"
ANNUAL = "annual"
SCOPES = (COURSE, ANNUAL)

VALID = "valid"
REVOKED = "revoked"
REPLACED = "replaced"

# Why a certificate shows revoked (the public answer names the category, never the reason's text).
CERTIFICATE_REVOKED = "certificate_revoked"  # the certificate itself was revoked (bureau, issuer)
CREDIT_REVOKED = "credit_revoked"  # an entry it certifies was revoked (employer, bureau)
CREDIT_REVERSED = "credit_reversed"  # an entry it certifies was reversed (a correction of the ledger)
CREDIT_NOT_REGISTERED = "credit_not_registered"  # an entry is otherwise no longer registered (or gone)

# Neither 0/O nor 1/I: what is read off paper or a phone screen is typed back without guessing.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols, 5 bits each
SERIAL_PREFIX = "QDCE"  # 青岛继续教育 (Qingdao continuing education)
SERIAL_RANDOM_LEN = 10  # 50 bits: not sequential, not guessable
CODE_LEN = 8  # 40 bits more, printed apart from the serial; both are needed to verify
SERIAL_RE = re.compile(rf"^{SERIAL_PREFIX}-[0-9]{{4}}-[{ALPHABET}]{{{SERIAL_RANDOM_LEN}}}$")
CODE_RE = re.compile(rf"^[{ALPHABET}]{{{CODE_LEN}}}$")
SERIAL_MAX = 40  # what a query may hold before it is refused as bad input (a serial is 20 characters)
CODE_MAX = 32

REGISTERED = "registered"  # catalog.credit.ledger.REGISTERED: what a certificate may certify
CATEGORIES = ("public", "professional")  # catalog.domain.Category: 公需 / 专业


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_serial(year: int) -> str:
    """e.g. QDCE-2026-7KQ4M9XP2D: the credit year, then 50 random bits from the OS's CSPRNG."""
    return f"{SERIAL_PREFIX}-{year:04d}-{_random(SERIAL_RANDOM_LEN)}"


def new_code() -> str:
    return _random(CODE_LEN)


def normalise(text: str) -> str:
    """What a person typed, as stored: upper case, no spaces (a code may be typed in groups: "ABCD EFGH")."""
    return "".join(text.split()).upper()


def is_serial(text: str) -> bool:
    return SERIAL_RE.fullmatch(text) is not None


def is_code(text: str) -> bool:
    return CODE_RE.fullmatch(text) is not None


def verify_url(base_url: str, serial: str, code: str) -> str:
    """What the QR code holds: the public verification page with both parts filled in."""
    return f"{base_url.rstrip('/')}/verify?{urlencode({'serial': serial, 'code': code})}"


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小三 -> 张*三, 欧阳小明 -> 欧**明: enough to match the paper, not to identify."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, 3) + name[-1]


@dataclass(frozen=True)
class Entry:
    """What a certificate needs of a ledger entry."""

    id: int
    category: str
    xueshi: Decimal


@dataclass(frozen=True)
class Totals:
    public: Decimal
    professional: Decimal

    @property
    def total(self) -> Decimal:
        return self.public + self.professional


def totals(entries: Iterable[Entry]) -> Totals:
    """学时 by 公需/专业 of the entries (which the caller chose: registered, not reversed)."""
    sums = {c: Decimal(0) for c in CATEGORIES}
    for e in entries:
        if e.category not in sums:
            raise ValueError(f"unknown credit category {e.category!r}")
        sums[e.category] += e.xueshi
    cents = Decimal("0.01")
    return Totals(sums["public"].quantize(cents), sums["professional"].quantize(cents))


def xueshi_text(value: Decimal) -> str:
    """12.50 -> "12.5", 3.00 -> "3": how 学时 are written on paper."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Status:
    status: str  # VALID, REVOKED, REPLACED
    reason: str | None  # for REVOKED: one of the categories above


def status_of(
    *,
    revoked: bool,
    replaced: bool,
    entry_ids: Iterable[int],
    entry_statuses: Mapping[int, str],
    reversed_ids: set[int],
) -> Status:
    """Revoked when the certificate was revoked or any entry it certifies is no longer registered (so a
    revocation or reversal of the credit shows at once); else replaced when a newer one took its place;
    else valid. `entry_statuses` holds the entries' current statuses (a missing id: no longer there)."""
    if revoked:
        return Status(REVOKED, CERTIFICATE_REVOKED)
    reasons = set()
    for entry_id in entry_ids:
        current = entry_statuses.get(entry_id)
        if entry_id in reversed_ids:
            reasons.add(CREDIT_REVERSED)
        elif current == "revoked":
            reasons.add(CREDIT_REVOKED)
        elif current != REGISTERED:
            reasons.add(CREDIT_NOT_REGISTERED)
    for reason in (CREDIT_REVOKED, CREDIT_REVERSED, CREDIT_NOT_REGISTERED):
        if reason in reasons:
            return Status(REVOKED, reason)
    if replaced:
        return Status(REPLACED, None)
    return Status(VALID, None)
