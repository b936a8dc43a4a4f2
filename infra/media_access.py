"""Who may fetch recorded and live media under `/hls/`: one signed cookie per person and session.

Everything a player fetches for session N lives under the object prefix `hls/N/` (recorder.layout), so
a grant names a person and a session and is sent by the browser only there: cookie `lectern_media`
with `Path=/hls/N/`. The catalog issues it to people who may watch the session (the rule of
/api/replays/{id}); the embedded /hls route and nginx (`auth_request` to /hls-auth, its answer cached
per cookie and session) verify it. The URL stays the same for every viewer, so segments are cached by
path and shared by all of them. See docs/security.md, "Media access".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from infra import tokens
from infra.errors import Forbidden, Unauthenticated

COOKIE: Final = "lectern_media"
# The same grant, sent only to the session's overflow-HLS heartbeat endpoint (a cookie's Path scopes it,
# and `lectern_media` is scoped to /hls/N/): the overflow viewer's heartbeats name the person without a
# database read.
BEAT_COOKIE: Final = "lectern_media_beat"
PURPOSE: Final = "media"
# A grant outlives a lecture's gap between page loads, not a withdrawal for long: pages renew it while
# they play (the replay page with each progress report, the watch page's HLS fallback on a timer).
TTL_S: Final = 3600
# What a media URL may look like: the session's number, then the recorder's names (letters, digits,
# `_`, `-`, `.`, `/`), no percent-escapes, no `..`. nginx refuses anything else before any check, so
# that it, the app and the object store all read the same key from the same bytes.
_CANONICAL: Final = re.compile(r"(?!.*\.\.)(?!.*//)/hls/([1-9][0-9]{0,17})/[A-Za-z0-9._/-]+")


@dataclass(frozen=True)
class MediaGrant:
    """A verified grant: `person_id` may fetch everything under `/hls/{session_id}/`."""

    person_id: int
    session_id: int
    role: str
    issued_at: float = 0.0  # unix s; 0.0 for a grant that does not say (issued before `iat` was added)


def cookie_path(session_id: int) -> str:
    return f"/hls/{session_id}/"


def heartbeat_path(session_id: int) -> str:
    """Where an overflow (HLS) viewer posts its heartbeats; BEAT_COOKIE is scoped to it."""
    return f"/api/sessions/{session_id}/hls-heartbeats"


def session_of_path(path: str) -> int | None:
    """The session a canonical media path (`/hls/12/...`, no query) belongs to; None for any other."""
    match = _CANONICAL.fullmatch(path)
    return int(match.group(1)) if match else None


def issue(secret_key: str, person_id: int, session_id: int, role: str, now: float) -> str:
    """The cookie value granting `person_id` the media of `session_id` until `now + TTL_S`."""
    claims = tokens.Claims(
        person_id=person_id,
        subject=f"hls:{session_id}",
        role=role,
        expires_at=now + TTL_S,
        # When it was issued: a withdrawal after it voids it (the catalog's admission check).
        extra={"iat": now},
    )
    return tokens.sign(secret_key, PURPOSE, claims)


def check(secret_key: str, cookie: str | None, path: str, now: float) -> MediaGrant:
    """The grant behind `cookie` if it covers the media at `path`.

    Forbidden for a path that is not a canonical media path or a grant for another session;
    Unauthenticated for no cookie, a forged or an expired one.
    """
    session_id = session_of_path(path)
    if session_id is None:
        raise Forbidden("not a media path", field="path")
    if not cookie:
        raise Unauthenticated("no media grant: open the replay or watch page first")
    claims = tokens.verify(secret_key, PURPOSE, cookie, now)
    if claims.subject != f"hls:{session_id}":
        raise Forbidden("this media grant is for another session")
    iat = claims.extra.get("iat")
    issued_at = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0
    return MediaGrant(
        person_id=claims.person_id, session_id=session_id, role=claims.role, issued_at=issued_at
    )


def check_session(secret_key: str, cookie: str | None, session_id: int, now: float) -> MediaGrant:
    """The grant behind `cookie` (BEAT_COOKIE) if it is for `session_id`: Unauthenticated for none, a
    forged or an expired one; Forbidden for another session's."""
    return check(secret_key, cookie, f"{cookie_path(session_id)}heartbeat", now)
