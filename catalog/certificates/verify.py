"""Public verification of a certificate (anyone, no login): serial and code in, what the certificate
certifies and its status now out — the holder's name masked, nothing else about them.

No oracle: an unknown serial and a wrong code get the same 404 with the same message after the same
work (one lookup, one constant-time comparison), so nothing tells which part was wrong. Rate-limited per
client address with catalog.throttle's rules: every verification counts (generously) and failed ones
count hard, so guessing is slowed to a crawl while an HR office checking a pile of certificates is not.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from catalog import throttle, throttle_store
from catalog.certificates import records, rules
from catalog.credit.engine import beijing_day
from catalog.db import Database
from catalog.models import Certificate
from infra.errors import Invalid, NotFound, TooMany

log = logging.getLogger(__name__)

NOT_FOUND = "未找到该证书，请核对编号和验证码"
# Every verification from one address: 120 in ten minutes freely, then 1 s, 2 s ... at most a minute
# apart (scraping by trying serials is slowed; a person or an office checking certificates is not).
VERIFY_ADDRESS = throttle.Policy(
    "certificate_verify", free=120, first_delay_s=1, max_delay_s=60, window_s=600
)
# Failed verifications (unknown serial or wrong code) from one address: 10 freely, then 2 s, 4 s ... at
# most 5 minutes apart, forgotten after an hour without one. A success takes its count back.
VERIFY_FAILED = throttle.Policy(
    "certificate_verify_failed", free=10, first_delay_s=2, max_delay_s=300, window_s=3600
)
# Both windows are within throttle.POLICIES' longest, so throttle_store.forget_stale keeps their rows
# while they still count.
_DUMMY_CODE = "2" * rules.CODE_LEN


def parse(query: Mapping[str, str]) -> tuple[str, str]:
    """(serial, code) as typed, normalised; Invalid when one is missing or far too long to be one."""
    out = []
    for name, longest in (("serial", rules.SERIAL_MAX), ("code", rules.CODE_MAX)):
        value = rules.normalise(query.get(name, ""))
        if not value:
            raise Invalid(f"{name} is required", field=name)
        if len(value) > longest:
            raise Invalid(f"{name} must be at most {longest} characters", field=name)
        out.append(value)
    return out[0], out[1]


def public_view(cert: Certificate, status: rules.Status) -> dict[str, Any]:
    return {
        "serial": cert.serial,
        "status": status.status,
        "reason": status.reason,
        "name": rules.mask_name(cert.person_name),
        "scope": cert.scope,
        "year": cert.year,
        "course_title": cert.course_title,
        "total_xueshi": str(cert.total_xueshi),
        "public_xueshi": str(cert.public_xueshi),
        "professional_xueshi": str(cert.professional_xueshi),
        "issuer": cert.issuer_name,
        "issued_at": cert.issued_at.isoformat(),
        "issued_on": beijing_day(cert.issued_at).isoformat(),
    }


async def verify(db: Database, address: str, serial: str, code: str, now: datetime) -> dict[str, Any]:
    checks: list[throttle_store.Check] = [
        (VERIFY_ADDRESS, throttle.address_key(address)),
        (VERIFY_FAILED, throttle.address_key(address)),
    ]
    # Counted (and committed) before the lookup: parallel guesses each see the ones before them.
    async with db.sessions.begin() as s:
        wait = await throttle_store.admit(s, checks, now)
    if wait is not None:
        log.warning("certificate verification throttled address=%s retry_after_s=%s", address, wait)
        raise TooMany(
            f"too many certificate verifications from this address; try again in {wait} s",
            details={"retry_after_s": wait},
        )
    async with db.sessions.begin() as s:
        cert = await records.by_serial(s, serial) if rules.is_serial(serial) else None
        expected = cert.verify_code if cert is not None else _DUMMY_CODE
        matches = hmac.compare_digest(expected.encode(), code.encode())
        if cert is None or not matches:
            log.info("certificate verification failed address=%s", address)
            raise NotFound(NOT_FOUND)
        await throttle_store.refund(s, [(VERIFY_FAILED, throttle.address_key(address))])
        status = (await records.statuses(s, [cert]))[cert.id]
    return public_view(cert, status)
