"""Replay playback evidence, the pure part: the signed playback grant (what a heartbeat carries instead of
a database lookup), the replay's presence-check schedule, check nonces, and `Playbacks`, this process's
memory of open clients (superseded ones, heartbeat order, checks issued and answered). No SQL, no HTTP,
no clock: `now` is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from infra import tokens
from infra.errors import Conflict, Forbidden, TooMany, Unauthenticated

PURPOSE = "playback"
ROLE = "playback"
# A grant outlives the media by this much: long pauses are normal; after it the page opens a new client.
GRANT_SLACK_S = 2 * 3600
# No check this close to the start or the end of the media; media shorter than CHECKED_FROM_S has none
# (a clip of a minute is over before a check would mean anything).
CHECK_MARGIN_S = 30.0
CHECKED_FROM_S = 120.0
MEDIA_PER_CHECK_UNIT_S = 45 * 60.0  # checks_per_45_min: per 45 minutes of media
# Players round and the last frame lasts a little: positions this far past the end are still valid.
POSITION_SLACK_S = 1.0
# Heartbeats one client may send per heartbeat period (periodic + pause/seek/visibility ones); more is
# a script flooding the evidence topic.
HEARTBEATS_PER_PERIOD_MAX = 20
PRUNE_EVERY_S = 60.0


class Superseded(Conflict):
    """A newer learning client of the same person took over (R18)."""

    code = "superseded"


class CheckNotIssued(Conflict):
    code = "check_not_issued"


class CheckExpired(Conflict):
    code = "check_expired"


class CheckAnswered(Conflict):
    code = "check_answered"


# -- the grant (the signed token) --------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What the server decided when it opened a playback, signed into the token the page sends back."""

    client_id: str
    person_id: int
    recording_id: str
    duration_s: float
    angles: tuple[str, ...]
    seed: str  # the check schedule's seed
    checks_per_45_min: int
    check_window_s: int
    heartbeat_period_s: int
    binding: str  # login_binding() of the login that opened it
    expires_at: float  # epoch seconds

    @property
    def max_position_s(self) -> float:
        return self.duration_s + POSITION_SLACK_S


def login_binding(secret_key: str, session_token: str, csrf_token: str) -> str:
    """Ties a grant to the login (session cookie + CSRF token) that opened it, so that a heartbeat proves
    its caller without a database lookup: another person's login, or none, cannot use the grant."""
    return _mac(secret_key, f"playback-login|{session_token}|{csrf_token}")


def sign_grant(secret_key: str, grant: Grant) -> str:
    extra = {
        "c": grant.client_id,
        "r": grant.recording_id,
        "d": grant.duration_s,
        "a": list(grant.angles),
        "k": grant.seed,
        "n": grant.checks_per_45_min,
        "w": grant.check_window_s,
        "h": grant.heartbeat_period_s,
        "b": grant.binding,
    }
    claims = tokens.Claims(grant.person_id, f"recording:{grant.recording_id}", ROLE, grant.expires_at, extra)
    return tokens.sign(secret_key, PURPOSE, claims)


def verify_grant(secret_key: str, token: str, client_id: str, now: datetime) -> Grant:
    """The grant in `token`: Unauthenticated when it is forged, malformed or expired; Forbidden when it was
    issued for another client than the URL names (a replayed token of another playback)."""
    claims = tokens.verify(secret_key, PURPOSE, token, now.timestamp())
    x = claims.extra
    try:
        grant = Grant(
            client_id=_str(x["c"]),
            person_id=claims.person_id,
            recording_id=_str(x["r"]),
            duration_s=float(x["d"]),
            angles=tuple(_str(a) for a in x["a"]),
            seed=_str(x["k"]),
            checks_per_45_min=int(x["n"]),
            check_window_s=int(x["w"]),
            heartbeat_period_s=int(x["h"]),
            binding=_str(x["b"]),
            expires_at=claims.expires_at,
        )
    except (KeyError, TypeError, ValueError):
        raise Unauthenticated("malformed token") from None
    if claims.role != ROLE or grant.heartbeat_period_s < 1 or grant.check_window_s < 1:
        raise Unauthenticated("malformed token")
    if not hmac.compare_digest(grant.client_id, client_id):
        raise Forbidden("this token belongs to another playback", field="token")
    return grant


def check_login(grant: Grant, secret_key: str, session_token: str, csrf_token: str) -> None:
    """Unauthenticated without a login; Forbidden when the login or its CSRF token is not the one the grant
    was opened by (another person's token, a copied token, a cross-site request)."""
    if not session_token:
        raise Unauthenticated("log in first")
    if not csrf_token:
        raise Forbidden("missing or wrong X-CSRF-Token header", field="X-CSRF-Token")
    if not hmac.compare_digest(grant.binding, login_binding(secret_key, session_token, csrf_token)):
        raise Forbidden("this playback was opened by another login", field="X-CSRF-Token")


# -- the check schedule ------------------------------------------------------------------------------


def check_count(duration_s: float, checks_per_45_min: int) -> int:
    """At least `checks_per_45_min` per 45 minutes of media, rounded up (so a replay of 2 minutes or more
    has at least one); none for shorter media or a policy of 0."""
    if duration_s < CHECKED_FROM_S or checks_per_45_min <= 0:
        return 0
    return math.ceil(duration_s / MEDIA_PER_CHECK_UNIT_S * checks_per_45_min)


def check_positions(seed: str, duration_s: float, checks_per_45_min: int) -> tuple[float, ...]:
    """Where the checks fall on the media: one at a random point in each of `check_count` equal strata of
    the media between the margins (none in the first or last 30 s). Deterministic from `seed`, so any
    process computes the same ones."""
    n = check_count(duration_s, checks_per_45_min)
    low, high = CHECK_MARGIN_S, duration_s - CHECK_MARGIN_S
    width = (high - low) / n if n else 0.0
    return tuple(round(low + (i + _unit(seed, i)) * width, 3) for i in range(n))


def check_id(client_id: str, index: int) -> str:
    return f"{client_id}.{index}"


def check_nonce(secret_key: str, client_id: str, check: str) -> str:
    """What the page must send back with its answer: only the server (and the page it told) knows it."""
    return _mac(secret_key, f"replay-check|{client_id}|{check}")


@dataclass(frozen=True)
class IssuedCheck:
    check_id: str
    position_s: float
    issued_at: datetime
    deadline_at: datetime

    def view(self, secret_key: str, client_id: str, now: datetime) -> dict[str, Any]:
        """The check as a heartbeat's answer shows it to the page."""
        return {
            "check_id": self.check_id,
            "nonce": check_nonce(secret_key, client_id, self.check_id),
            "window_s": max(0, math.floor((self.deadline_at - now).total_seconds())),
        }


# -- this process's memory of playback clients ------------------------------------------------------


@dataclass
class _Client:
    expires_at: float
    positions: tuple[float, ...]
    last_seq: int = -1
    last_position_s: float | None = None  # where the last in-order visible heartbeat was
    window_started_at: datetime | None = None
    window_count: int = 0
    issued: dict[int, IssuedCheck] = field(default_factory=dict)
    answered: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Beat:
    """What a heartbeat means to the handler: the check to show (if any) and whether it is new (publish
    `replay_check.issued` once)."""

    check: IssuedCheck | None
    new_check: bool


class Playbacks:
    """Open playback clients as this process knows them: which were superseded by an opening here, and
    per client the heartbeat order and the checks issued. Entries are dropped when their grant expires.

    A client's checks live in the process that issued them: the page talks to one server (as the room
    channel does); an answer reaching another process is refused as `check_not_issued`.
    """

    def __init__(self) -> None:
        self._superseded: dict[str, tuple[str, float]] = {}  # client -> (superseded by, drop after)
        self._clients: dict[str, _Client] = {}
        self._pruned_at: float = 0.0

    def __len__(self) -> int:
        return len(self._clients) + len(self._superseded)

    def opened(self, grant: Grant, superseded: list[str], now: datetime) -> None:
        """A playback was opened here; `superseded` are the person's clients it took over (R18)."""
        self._prune(now)
        for old in superseded:
            self._superseded[old] = (grant.client_id, grant.expires_at)
            self._clients.pop(old, None)
        self._client(grant)

    def superseded_by(self, client_id: str) -> str | None:
        entry = self._superseded.get(client_id)
        return entry[0] if entry else None

    def heartbeat(self, grant: Grant, seq: int, position_s: float, visible: bool, now: datetime) -> Beat:
        """Account one valid heartbeat (Superseded, TooMany refuse it). A check is issued when the media,
        between this client's previous in-order visible heartbeat and this one, moved forward over one of its
        scheduled positions; while a check is open it is shown again, and no other is issued."""
        self._prune(now)
        self._refuse_superseded(grant.client_id)
        c = self._client(grant)
        period = timedelta(seconds=grant.heartbeat_period_s)
        if c.window_started_at is None or now - c.window_started_at >= period:
            c.window_started_at, c.window_count = now, 0
        if c.window_count >= HEARTBEATS_PER_PERIOD_MAX:
            wait_s = (c.window_started_at + period - now).total_seconds()
            raise TooMany(
                f"at most {HEARTBEATS_PER_PERIOD_MAX} heartbeats per {grant.heartbeat_period_s} s",
                details={"retry_after_s": max(1, math.ceil(wait_s))},
            )
        c.window_count += 1
        before: float | None = None
        if seq > c.last_seq:
            c.last_seq = seq
            # A hidden page's heartbeat does not move the mark: a check crossed while hidden is shown when
            # the page is seen again.
            if visible:
                before, c.last_position_s = c.last_position_s, position_s
        open_check = next(
            (chk for i, chk in c.issued.items() if i not in c.answered and chk.deadline_at > now), None
        )
        if open_check is not None:
            return Beat(open_check, new_check=False)
        if before is None or position_s <= before:
            return Beat(None, new_check=False)
        for i, at in enumerate(c.positions):
            if i not in c.issued and before < at <= position_s:
                issued = IssuedCheck(
                    check_id(grant.client_id, i), at, now, now + timedelta(seconds=grant.check_window_s)
                )
                c.issued[i] = issued
                return Beat(issued, new_check=True)
        return Beat(None, new_check=False)

    def answer(self, grant: Grant, check: str, now: datetime) -> IssuedCheck:
        """Record the answer to an issued check (its nonce already verified): CheckNotIssued, CheckExpired,
        CheckAnswered or Superseded refuse it."""
        self._refuse_superseded(grant.client_id)
        c = self._clients.get(grant.client_id)
        index = _check_index(grant.client_id, check)
        issued = c.issued.get(index) if c is not None and index is not None else None
        if c is None or index is None or issued is None:
            raise CheckNotIssued("this check was not issued to this playback", field="check_id")
        if index in c.answered:
            raise CheckAnswered("this check was answered already", field="check_id")
        if now > issued.deadline_at:
            raise CheckExpired("the time to answer this check is over", field="check_id")
        c.answered.add(index)
        return issued

    def _refuse_superseded(self, client_id: str) -> None:
        by = self.superseded_by(client_id)
        if by is not None:
            raise Superseded(
                "learning continues in another page or device (one active learning client per person)",
                details={"superseded_by": by},
            )

    def _client(self, grant: Grant) -> _Client:
        c = self._clients.get(grant.client_id)
        if c is None:
            positions = check_positions(grant.seed, grant.duration_s, grant.checks_per_45_min)
            c = self._clients[grant.client_id] = _Client(grant.expires_at, positions)
        return c

    def _prune(self, now: datetime) -> None:
        t = now.timestamp()
        if t - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = t
        for cid in [cid for cid, c in self._clients.items() if c.expires_at <= t]:
            del self._clients[cid]
        for cid in [cid for cid, (_, until) in self._superseded.items() if until <= t]:
            del self._superseded[cid]


# -- helpers -----------------------------------------------------------------------------------------


def _mac(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def _unit(seed: str, i: int) -> float:
    """A number in [0, 1) from the seed and the index (stable across processes and Python versions)."""
    digest = hashlib.sha256(f"{seed}|{i}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _check_index(client_id: str, check: str) -> int | None:
    prefix = f"{client_id}."
    tail = check.removeprefix(prefix)
    if tail == check or not tail.isdigit() or len(tail) > 6:
        return None
    return int(tail)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("not a non-empty string")
    return value
