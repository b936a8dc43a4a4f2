"""Bearer tokens are signed, expire, and are bound to their purpose."""

from __future__ import annotations

import pytest

from infra.errors import Unauthenticated
from infra.tokens import Claims, sign, verify

KEY = "k" * 32
CLAIMS = Claims(person_id=7, subject="session:3", role="expert", expires_at=1000.0, extra={"a": 1})


def test_a_signed_token_verifies_to_its_claims() -> None:
    assert verify(KEY, "whip", sign(KEY, "whip", CLAIMS), now=999.0) == CLAIMS


@pytest.mark.parametrize(
    ("key", "purpose", "now", "message"),
    [
        ("x" * 32, "whip", 999.0, "signature"),
        (KEY, "whep", 999.0, "signature"),
        (KEY, "whip", 1000.0, "expired"),
    ],
    ids=["other-key", "other-purpose", "expired"],
)
def test_tokens_are_refused_when_forged_reused_or_expired(
    key: str, purpose: str, now: float, message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        verify(key, purpose, sign(KEY, "whip", CLAIMS), now=now)


@pytest.mark.parametrize(
    "token", ["", "abc", "abc.", ".abc", "a.b.c"], ids=["empty", "no-dot", "no-mac", "no-payload", "garbage"]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthenticated):
        verify(KEY, "whip", token, now=0.0)


def test_a_tampered_payload_is_refused() -> None:
    token = sign(KEY, "whip", CLAIMS)
    other = sign(KEY, "whip", Claims(8, "session:3", "expert", 1000.0, {}))
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(Unauthenticated, match="signature"):
        verify(KEY, "whip", forged, now=0.0)
