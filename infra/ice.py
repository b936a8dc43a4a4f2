"""ICE server configuration for WebRTC peers: the configured STUN/TURN URLs, and for TURN, short-lived
credentials derived from a secret shared with the TURN server (the "TURN REST API" scheme coturn
implements as `use-auth-secret`: username `<expiry unix time>:<user>`, password
base64(HMAC-SHA1(secret, username))). No static TURN password ever reaches a browser, and a
credential handed out stops working at its expiry.

Pure: no I/O, no clock of its own (callers pass `now`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

_TURN_SCHEMES = ("turn:", "turns:")
_STUN_SCHEMES = ("stun:", "stuns:")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One entry of an RTCConfiguration's iceServers (the browser's and aiortc's shape)."""

    url: str
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"urls": self.url}
        if self.username is not None and self.credential is not None:
            out |= {"username": self.username, "credential": self.credential}
        return out

    def as_link(self) -> str:
        """A `Link` header value as WHIP/WHEP endpoints return ICE servers (RFC 9725 §4.6)."""
        out = f'<{self.url}>; rel="ice-server"'
        if self.username is not None and self.credential is not None:
            out += f'; username="{_quoted(self.username)}"; credential="{_quoted(self.credential)}"'
            out += '; credential-type="password"'
        return out


def _quoted(value: str) -> str:
    """Body of an RFC 9110 quoted-string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def is_turn(url: str) -> bool:
    return url.lower().startswith(_TURN_SCHEMES)


def check_urls(urls: Sequence[str], turn_secret: str) -> str | None:
    """What is wrong with a configured URL list, or None: every URL must be stun:/stuns:/turn:/turns:,
    and TURN needs the shared secret to make credentials."""
    for url in urls:
        if not url.lower().startswith(_STUN_SCHEMES + _TURN_SCHEMES):
            return f"{url!r} is not a stun:, stuns:, turn: or turns: URL"
        if is_turn(url) and not turn_secret:
            return f"{url!r} is a TURN server but no TURN secret is set"
    return None


def turn_credential(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    """(username, password) valid until `expires_at` (unix seconds) for a TURN server that shares
    `secret` (coturn: --use-auth-secret --static-auth-secret=<secret>)."""
    if ":" in user:
        raise ValueError("a TURN user name must not contain ':'")
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    urls: Sequence[str], turn_secret: str, *, user: str, now: float, ttl_s: int
) -> list[IceServer]:
    """The ICE servers one peer may use: STUN URLs as they are, TURN URLs with a credential for `user`
    that expires `ttl_s` after `now`."""
    expires_at = int(now) + ttl_s
    out = []
    for url in urls:
        if is_turn(url):
            username, password = turn_credential(turn_secret, user, expires_at)
            out.append(IceServer(url, username, password))
        else:
            out.append(IceServer(url))
    return out


def for_person(
    urls: Sequence[str], turn_secret: str, *, person_id: int, now: float, ttl_s: int
) -> list[IceServer]:
    """The ICE servers for a person's browser: their TURN user is `person-<id>` (as coturn logs it)."""
    return ice_servers(urls, turn_secret, user=f"person-{person_id}", now=now, ttl_s=ttl_s)
