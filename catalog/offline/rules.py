"""Offline training's pure rules: the venue's rotating signed codes, when a session takes sign-ins and
sign-outs, the window credit is clipped to (R8), and the credit of a person's signed intervals.

Pure: no SQL, no HTTP, no clock (`now` is passed in). The refusals are domain errors with a stable code
and, in `details.message_zh`, the sentence the learner's phone shows.

A code is `<slot>.<tag>`: `slot` is the Unix second its period began (a multiple of
`offline_code_period_s`), `tag` the first 18 bytes of HMAC-SHA256(secret key, "offline_code.<session>.<slot>")
in base64url (24 characters). Only the server can mint one; it names its session, so a code of another
venue is as good as a forged one; it stops working `offline_code_valid_s` after its slot began, so a
photo or a forwarded link dies within a minute; and each person may use it for one act (the service
keeps the codes used), so the same scan cannot sign in and sign out, nor be sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from catalog import fields
from catalog.credit import engine
from catalog.credit.evidence import Span
from catalog.credit.policy import CreditPolicy
from infra.errors import Conflict, DomainError, Forbidden, Invalid

CODE_PURPOSE = "offline_code"
TAG_BYTES = 18  # 144 bits: guessing is hopeless, and the QR code stays small
CODE_RE = re.compile(r"^([0-9]{1,10})\.([A-Za-z0-9_-]{24})$")
CODE_MAX = 64
# A code minted by a server whose clock runs a little ahead is still accepted.
CLOCK_SKEW = timedelta(seconds=5)
# Sign-in opens this long before the scheduled start (people arrive early and queue at the door) and
# closes at the window's end; time before the start is not credited (R8).
SIGN_IN_OPENS_BEFORE = timedelta(minutes=15)
# Sign-out is taken until this long after the window's end (the queue at the exit); later, staff correct.
SIGN_OUT_GRACE = timedelta(minutes=60)
# A staff correction may put a time at most this far outside the schedule (as session time corrections).
CORRECTION_SLACK = timedelta(days=1)
SIGN_IN = "sign_in"
SIGN_OUT = "sign_out"
ACTIONS = (SIGN_IN, SIGN_OUT)
OFFLINE = "offline"  # the ledger kind (catalog.credit.ledger.OFFLINE)


# -- refusals ---------------------------------------------------------------------------------------------


class NotOffline(Conflict):
    code = "not_offline"


class NotEnrolled(Forbidden):
    code = "not_enrolled"


class CodeInvalid(Forbidden):
    code = "code_invalid"


class CodeExpired(Conflict):
    code = "code_expired"


class CodeUsed(Conflict):
    code = "code_used"


class SignInNotOpen(Conflict):
    code = "sign_in_not_open"


class SignInClosed(Conflict):
    code = "sign_in_closed"


class SignOutClosed(Conflict):
    code = "sign_out_closed"


class AlreadySignedIn(Conflict):
    code = "already_signed_in"


class SignedInElsewhere(Conflict):
    code = "signed_in_elsewhere"


class LearningOnline(Conflict):
    code = "learning_online"


class NotSignedIn(Conflict):
    code = "not_signed_in"


class VenueClosed(Conflict):
    code = "venue_closed"


def refuse(
    kind: type[DomainError], message: str, zh: str, *, field: str | None = None, **details: Any
) -> DomainError:
    """A refusal carrying the Chinese sentence for the learner (`details.message_zh`)."""
    return kind(message, field=field, details={"message_zh": zh, **details})


# -- codes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueCode:
    session_id: int
    slot: int  # Unix second its period began
    text: str
    issued_at: datetime
    expires_at: datetime  # no longer accepted from this instant
    next_at: datetime  # the venue shows the next code from this instant


def _tag(key: str, session_id: int, slot: int) -> str:
    mac = hmac.new(key.encode(), f"{CODE_PURPOSE}.{session_id}.{slot}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:TAG_BYTES]).decode()


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def issue(key: str, session_id: int, now: datetime, policy: CreditPolicy) -> VenueCode:
    """The code a venue shows at `now`: every display of the session shows the same one in a period."""
    period = policy.offline_code_period_s
    slot = math.floor(now.timestamp() / period) * period
    return VenueCode(
        session_id=session_id,
        slot=slot,
        text=f"{slot}.{_tag(key, session_id, slot)}",
        issued_at=_instant(slot),
        expires_at=_instant(slot + policy.offline_code_valid_s),
        next_at=_instant(slot + period),
    )


def verify(key: str, session_id: int, code: str, now: datetime, policy: CreditPolicy) -> int:
    """The slot of a genuine, current code of this session. Invalid when it is not shaped like a code,
    CodeInvalid when it was not minted for this session by this server (tampered, forged, another
    venue's), CodeExpired when its validity has passed."""
    found = CODE_RE.match(code) if code.isascii() else None
    if found is None:
        raise refuse(
            Invalid, "code is not a venue code", "签到码格式不正确，请扫描现场大屏上的二维码。", field="code"
        )
    slot, tag = int(found.group(1)), found.group(2)
    if not hmac.compare_digest(tag, _tag(key, session_id, slot)):
        raise refuse(
            CodeInvalid,
            "this code was not issued for this session",
            "签到码无效：请扫描本课次现场大屏上的二维码。",
            field="code",
        )
    issued = _instant(slot)
    if issued > now + CLOCK_SKEW:
        raise refuse(CodeInvalid, "this code is not valid yet", "签到码无效，请重新扫描。", field="code")
    if now >= issued + timedelta(seconds=policy.offline_code_valid_s):
        raise refuse(
            CodeExpired,
            "this code has expired",
            "二维码已过期（照片或转发的链接很快失效）：请在现场重新扫描大屏上的二维码。",
            field="code",
            expired_at=(issued + timedelta(seconds=policy.offline_code_valid_s)).isoformat(),
        )
    return slot


# -- when a session takes sign-ins -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What credit is clipped to (R8): an audited time correction, else times recorded for the session,
    else its schedule (offline sessions are not seen by the live server)."""

    span: Span
    source: str  # correction | actual | schedule
    correction_id: int | None


def window(
    scheduled: Span,
    actual_start: datetime | None,
    actual_end: datetime | None,
    correction: Span | None,
    correction_id: int | None,
) -> Window:
    if correction is not None:
        return Window(correction, "correction", correction_id)
    if actual_start is not None and actual_end is not None and actual_end > actual_start:
        return Window((actual_start, actual_end), "actual", None)
    return Window(scheduled, "schedule", None)


@dataclass(frozen=True)
class Hours:
    """When a session takes sign-ins, sign-outs, and shows its venue code."""

    sign_in_opens_at: datetime
    sign_in_closes_at: datetime
    sign_out_closes_at: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "sign_in_opens_at": self.sign_in_opens_at.isoformat(),
            "sign_in_closes_at": self.sign_in_closes_at.isoformat(),
            "sign_out_closes_at": self.sign_out_closes_at.isoformat(),
        }


def hours(scheduled_start: datetime, win: Window) -> Hours:
    opens = min(scheduled_start, win.span[0]) - SIGN_IN_OPENS_BEFORE
    return Hours(opens, win.span[1], win.span[1] + SIGN_OUT_GRACE)


def check_sign_in_time(h: Hours, now: datetime) -> None:
    if now < h.sign_in_opens_at:
        raise refuse(
            SignInNotOpen,
            "sign-in has not opened yet",
            "还未到签到时间：开课前 15 分钟起可以签到。",
            field="session_id",
            opens_at=h.sign_in_opens_at.isoformat(),
        )
    if now >= h.sign_in_closes_at:
        raise refuse(
            SignInClosed,
            "this session has ended: sign-in is closed",
            "本课次已结束，不能再签到。",
            field="session_id",
            closed_at=h.sign_in_closes_at.isoformat(),
        )


def check_sign_out_time(h: Hours, now: datetime) -> None:
    if now >= h.sign_out_closes_at:
        raise refuse(
            SignOutClosed,
            "sign-out is closed: ask the staff to record it",
            "签退时间已过：请联系现场工作人员补录签退时间。",
            field="session_id",
            closed_at=h.sign_out_closes_at.isoformat(),
        )


def check_venue_open(h: Hours, now: datetime) -> None:
    if not h.sign_in_opens_at <= now < h.sign_out_closes_at:
        raise refuse(
            VenueClosed,
            "the venue code is shown from sign-in opening until sign-out closes",
            "现在不在签到、签退时间内，不显示二维码。",
            field="session_id",
            opens_at=h.sign_in_opens_at.isoformat(),
            closes_at=h.sign_out_closes_at.isoformat(),
        )


# -- credit -----------------------------------------------------------------------------------------------


def offline_credit(intervals: Iterable[Span], win: Span, policy: CreditPolicy) -> engine.LiveCredit:
    """A person's offline credit: the union of their signed intervals (sign-in → sign-out; several
    intervals of one day count once, R7) clipped to the window (R8), converted at the policy's rate
    (R5). Pro rata: the time signed in is the time credited; no presence threshold (R9) or checks apply,
    the signatures at the door are the evidence. Caps (R6, course) and R24/R29 are settlement's."""
    present = engine.clip(intervals, win)
    window_s = max((win[1] - win[0]).total_seconds(), 0.0)
    present_s = engine.seconds(present)
    minutes = (Decimal(repr(present_s)) / 60).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    xueshi = engine.to_xueshi(minutes, policy)
    days = engine.day_seconds(present)
    return engine.LiveCredit(
        kind=OFFLINE,
        policy_version=policy.version,
        window=win,
        window_s=window_s,
        present=tuple(present),
        present_s=present_s,
        ratio=present_s / window_s if window_s > 0 else 0.0,
        threshold_met=True,  # no threshold: whatever time was signed in is credited
        basis_s=present_s,
        checks_total=0,
        checks_answered=0,
        check_ratio=None,
        fraction=1.0,
        minutes=minutes,
        xueshi=xueshi,
        day_seconds=days,
        xueshi_by_day=engine.allocate_by_day(xueshi, days, policy) if xueshi > 0 else {},
        flags=(),
        rejections=(),
    )


# -- requests ---------------------------------------------------------------------------------------------


def act(body: Any) -> tuple[str, str]:
    """(action, code) of a check-in request: `{"action": "sign_in" | "sign_out", "code": "<slot>.<tag>"}`."""
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="action")
    fields.reject_unknown(body, {"action", "code"})
    action = body.get("action")
    if action not in ACTIONS:
        raise Invalid(f"action must be one of: {', '.join(ACTIONS)}", field="action")
    code = body.get("code")
    if not isinstance(code, str) or not code or len(code) > CODE_MAX:
        raise refuse(
            Invalid,
            f"code must be the venue code (a string of at most {CODE_MAX} characters)",
            "请扫描现场大屏上的二维码。",
            field="code",
        )
    return str(action), code
