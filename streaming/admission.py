"""Admission: when a media token is used (a WHIP or WHEP offer, a room-channel connection), whether the
system of record still stands behind it. The signature and expiry say the token was issued; this asks
whether what it was issued for still holds (the session not ended, the learner still enrolled).

The live path only knows the optional `ADMISSION` hook; the composition root (`streaming.live.use_catalog`)
sets it to ask the catalog. Without it (the live path or the channel alone, in tests) tokens are
checked by signature, expiry and what this process knows (a session that ended here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from infra.tokens import Claims


@dataclass(frozen=True)
class Admission:
    """A verified token being used: for `purpose` ("whip", "whep", "room") in `session_id`."""

    purpose: str
    session_id: int
    person_id: int
    role: str
    issued_at: float  # unix s; 0.0 for a token that does not say (then no enrollment predates it)


AdmissionCheck = Callable[[Admission], Awaitable[None]]
# Optional: raises a domain error (403, 409, ...) when the token no longer admits its holder.
ADMISSION: web.AppKey[AdmissionCheck] = web.AppKey("media_admission")
# Optional: the same question for a `/hls/` media grant (purpose "hls": replays and the live HLS; no
# session-window rule, replays are watched after the end). Raises 403 when the grant is void.
HLS_ADMISSION: web.AppKey[AdmissionCheck] = web.AppKey("hls_admission")


def issued_at(claims: Claims) -> float:
    """When a token was issued: `iat` (the catalog's tokens) or `granted_at` (a speaker's token)."""
    for name in ("iat", "granted_at"):
        value = claims.extra.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


async def admit_hls(
    app: web.Application, session_id: int, person_id: int, role: str, issued_at: float
) -> None:
    """Ask the HLS_ADMISSION hook, if set, whether a verified `/hls/` grant still admits its holder."""
    check = app.get(HLS_ADMISSION)
    if check is not None:
        await check(Admission("hls", session_id, person_id, role, issued_at))


async def admit(app: web.Application, purpose: str, session_id: int, claims: Claims) -> None:
    """Ask the ADMISSION hook, if set, whether `claims` still admit their holder; raises if not."""
    check = app.get(ADMISSION)
    if check is not None:
        await check(Admission(purpose, session_id, claims.person_id, claims.role, issued_at(claims)))
