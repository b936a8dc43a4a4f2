"""Signed, expiring bearer tokens (HMAC-SHA256) bound to a person, a subject and a role.

Format: base64url(JSON claims) + "." + base64url(HMAC-SHA256(key, purpose + "." + payload)).
The purpose string keeps a token minted for one use (e.g. WHEP) from being accepted for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from infra.errors import Unauthenticated


@dataclass(frozen=True)
class Claims:
    person_id: int
    subject: str  # what the token grants access to, e.g. "session:42"
    role: str
    expires_at: float
    extra: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, purpose: str, payload: str) -> str:
    return _b64(hmac.new(key.encode(), f"{purpose}.{payload}".encode(), hashlib.sha256).digest())


def sign(key: str, purpose: str, claims: Claims) -> str:
    body = {
        "p": claims.person_id,
        "s": claims.subject,
        "r": claims.role,
        "e": claims.expires_at,
        "x": claims.extra,
    }
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_mac(key, purpose, payload)}"


def verify(key: str, purpose: str, token: str, now: float) -> Claims:
    """The token's claims, or Unauthenticated if it is malformed, forged or expired."""
    payload, _, mac = token.partition(".")
    # Tokens are base64url: anything else (a header or query with other characters) is malformed, and
    # hmac.compare_digest would raise TypeError on non-ASCII text.
    if not payload or not mac or not token.isascii():
        raise Unauthenticated("malformed token")
    if not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        raise Unauthenticated("invalid token signature")
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(int(body["p"]), str(body["s"]), str(body["r"]), float(body["e"]), dict(body["x"]))
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("malformed token") from None
    if claims.expires_at <= now:
        raise Unauthenticated("token expired")
    return claims
