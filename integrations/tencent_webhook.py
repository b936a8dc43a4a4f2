"""Tencent Meeting webhooks (DOMAIN §6.1): the SHA1 signature, the optional AES payload encryption, the
GET `check_str` verification, and participant joined/left events as ExternalRecords.

Pure: no HTTP, no database. Replay protection (the same timestamp+nonce within 5 minutes, R30) needs
storage and lives with the handler's service; `timestamp_fresh` is the clock half of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from infra.errors import Invalid
from integrations.records import ExternalRecord, Platform, Trust, make_row_key
from integrations.tencent import PSTN_INSTANCE, meeting_ref

REPLAY_WINDOW_S = 300
JOINED = "meeting.participant-joined"
LEFT = "meeting.participant-left"


class BadSignature(Invalid):
    code = "webhook_signature_invalid"


class Replayed(Invalid):
    code = "webhook_replayed"


def webhook_signature(token: str, timestamp: str, nonce: str, data: str) -> str:
    """sha1 over the lexicographically sorted concatenation of token, timestamp, nonce and data (hex)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, data])).encode()).hexdigest()


def verify_signature(token: str, timestamp: str, nonce: str, data: str, sent: str) -> None:
    if not token:
        raise BadSignature("no webhook token is configured for this organization")
    expected = webhook_signature(token, timestamp, nonce, data)
    if not hmac.compare_digest(expected.encode(), sent.strip().lower().encode()):
        raise BadSignature("webhook signature does not match")


def timestamp_fresh(timestamp: str, now: datetime, window_s: int = REPLAY_WINDOW_S) -> bool:
    """Webhook timestamps are milliseconds (the official example); seconds are accepted too."""
    try:
        value = int(timestamp)
    except ValueError:
        return False
    at_s = value / 1000 if value > 10**11 else float(value)
    return abs(now.timestamp() - at_s) <= window_s


def _aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def decrypt(ciphertext_b64: str, encoding_aes_key: str) -> str:
    """AES-256-CBC, PKCS#7, IV = the first 16 key bytes; key = Base64-decode(EncodingAESKey + "=")."""
    key = _aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(ciphertext_b64, validate=True)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid("webhook payload cannot be decrypted with the configured EncodingAESKey") from exc


def encrypt(plaintext: str, encoding_aes_key: str) -> str:
    """The inverse of `decrypt` (what Tencent does; used by the tests' fake sender)."""
    key = _aes_key(encoding_aes_key)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def decode_data(data: str, encoding_aes_key: str = "") -> str:
    """`data` / `check_str` as delivered: Base64, or Base64 of AES ciphertext when a key is configured."""
    if encoding_aes_key:
        return decrypt(data, encoding_aes_key)
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid("webhook data is not Base64") from exc


def check_str_answer(check_str: str, encoding_aes_key: str = "") -> str:
    """The GET verification: URL-decode, Base64-decode (AES-decrypt if configured), answer the plaintext."""
    return decode_data(unquote(check_str), encoding_aes_key)


@dataclass(frozen=True)
class ParticipantEvent:
    """A joined or left event, with the meeting it belongs to."""

    event: str  # JOINED or LEFT
    meeting_id: str
    meeting_code: str
    sub_meeting_id: str | None
    ms_open_id: str
    at: datetime
    record: ExternalRecord  # for LEFT: the join it closes is matched by (meeting, ms_open_id)


def _ms(value: object) -> datetime:
    try:
        number = int(str(value))
    except (TypeError, ValueError) as exc:
        raise Invalid("webhook event has no valid operate_time") from exc
    return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)


def participant_events(plaintext: str, trace: str = "") -> list[ParticipantEvent]:
    """The participant joined/left events of one delivery (others, e.g. meeting.started, give none)."""
    try:
        body: Any = json.loads(plaintext)
    except ValueError as exc:
        raise Invalid("webhook data is not JSON") from exc
    if not isinstance(body, dict):
        raise Invalid("webhook data is not a JSON object")
    event = str(body.get("event", ""))
    if event not in (JOINED, LEFT):
        return []
    trace = str(body.get("trace_id") or trace)
    out: list[ParticipantEvent] = []
    for i, item in enumerate(body.get("payload") or []):
        if not isinstance(item, dict):
            continue
        operator = item.get("operator") or {}
        info = item.get("meeting_info") or {}
        at = _ms(item.get("operate_time"))
        meeting_id = str(info.get("meeting_id") or "")
        if not meeting_id:
            raise Invalid("webhook event has no meeting_id")
        sub = str(info.get("sub_meeting_id") or "") or None
        ref = meeting_ref(meeting_id, sub)
        user = str(operator.get("userid") or operator.get("open_id") or "") or None
        ms_open_id = str(operator.get("ms_open_id") or operator.get("uuid") or "")
        instance = str(operator.get("instance_id", "")) or None
        is_pstn = instance == PSTN_INSTANCE or bool(operator.get("pstn_number"))
        record = ExternalRecord(
            platform=Platform.TENCENT,
            external_meeting_ref=ref,
            row_key=make_row_key("tencent-webhook", ref, ms_open_id or user, instance, int(at.timestamp())),
            external_user_id=user,
            display_name=str(operator.get("user_name") or ""),
            join_at=at if event == JOINED else None,
            leave_at=at if event == LEFT else None,
            instance=instance,
            connection_id=ms_open_id or None,
            is_pstn=is_pstn,
            trust=Trust.HIGH,
            raw_ref=f"webhook {trace} #{i + 1}".strip(),
        )
        out.append(
            ParticipantEvent(
                event, meeting_id, str(info.get("meeting_code") or ""), sub, ms_open_id, at, record
            )
        )
    return out
