"""Platform credentials encrypted at rest: AES-256-GCM with a key from LECTERN_CREDENTIALS_KEY (or, in
embedded mode only, one derived from the secret key). The organization and vendor are bound in as
associated data, so a ciphertext copied to another organization's row does not open.

What is stored is never given back through the API: only `hint` (the last 4 characters of the public
id: SecretId or AppKey) and when it was set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.errors import Unavailable
from infra.settings import Settings

NONCE_BYTES = 12


class CredentialsUnreadable(Unavailable):
    code = "credentials_unreadable"


@dataclass(frozen=True)
class Sealed:
    ciphertext: str  # Base64(nonce + AES-GCM ciphertext and tag)
    key_id: str


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the credentials key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"lectern-credentials-key-id:" + key).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id})"

    def seal(self, values: dict[str, str], context: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        data = self._aead.encrypt(nonce, json.dumps(values).encode(), context.encode())
        return Sealed(base64.b64encode(nonce + data).decode(), self.key_id)

    def open(self, sealed: Sealed, context: str) -> dict[str, str]:
        if sealed.key_id != self.key_id:
            raise CredentialsUnreadable(
                "the saved platform credentials were encrypted with another LECTERN_CREDENTIALS_KEY: "
                "enter them again"
            )
        raw = base64.b64decode(sealed.ciphertext)
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise CredentialsUnreadable("the saved platform credentials cannot be decrypted") from None
        values = json.loads(plain)
        return {str(k): str(v) for k, v in values.items()}


def sealer_for(settings: Settings) -> Sealer | None:
    """The configured key; in embedded mode (no DATABASE_URL) one derived from the secret key; else None
    (saving credentials is then refused)."""
    if settings.credentials_key:
        return Sealer(base64.b64decode(settings.credentials_key))
    if not settings.database_url and settings.secret_key:
        return Sealer(hashlib.sha256(b"lectern-credentials:" + settings.secret_key.encode()).digest())
    return None
