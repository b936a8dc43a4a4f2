"""Tencent Meeting (腾讯会议) REST API: AK/SK request signing (DOMAIN §6.1), meeting lookup by id or by the
9-digit meeting code, and the participant list (one row per join) as ExternalRecords.

The signing and parsing functions are pure; `TencentClient` adds HTTP (aiohttp), retries with backoff on
5xx and timeouts, and maps Tencent's error codes to our typed errors. Credentials never reach a log line
or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp

from integrations.errors import PlatformRefused, UnknownMeeting, WrongCredentials
from integrations.records import ExternalRecord, Platform, Trust, make_row_key
from integrations.retry import DEFAULT_BACKOFF, Backoff, Retryable, with_retries

DEFAULT_BASE_URL = "https://api.meeting.qq.com"
PAGE_SIZE_MAX = 100
PSTN_INSTANCE = "0"

# Tencent's error_info.error_code values we act on (https://cloud.tencent.com/document/product/1095/43551
# and the error code list); anything else with a 4xx is PlatformRefused.
AUTH_ERRORS = frozenset({200001, 200002, 200003, 50000, 50001})
REPLAYED_NONCE = 190301
MEETING_ERRORS = frozenset({9002, 9003})


@dataclass(frozen=True)
class TencentCredentials:
    """An enterprise self-built app's keys. `userid` is the operator the API acts as (the meetings'
    creator or an enterprise super-admin: only they may read participants). The webhook token and
    EncodingAESKey verify and decrypt webhook deliveries. Secrets are kept out of repr()."""

    app_id: str
    secret_id: str
    secret_key: str = field(repr=False)
    userid: str
    sdk_id: str = ""
    webhook_token: str = field(default="", repr=False)
    webhook_aes_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class MeetingInfo:
    meeting_id: str
    meeting_code: str
    subject: str
    start_at: datetime | None
    end_at: datetime | None
    recurring: bool
    sub_meeting_ids: tuple[str, ...]


# --- signing (pure) --------------------------------------------------------------------------------------


def string_to_sign(method: str, secret_id: str, nonce: str, timestamp: str, uri: str, body: str) -> str:
    """DOMAIN §6.1: method, the three signed headers in this order, the path with its query, the body
    ("" for GET)."""
    headers = f"X-TC-Key={secret_id}&X-TC-Nonce={nonce}&X-TC-Timestamp={timestamp}"
    return f"{method.upper()}\n{headers}\n{uri}\n{body}"


def signature(secret_key: str, to_sign: str) -> str:
    """Base64 of the *lowercase hex* HMAC-SHA256 (not of the raw digest)."""
    hex_digest = hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(hex_digest.encode()).decode()


def signed_headers(
    creds: TencentCredentials, method: str, uri: str, body: str, nonce: str, timestamp: str
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-TC-Key": creds.secret_id,
        "X-TC-Timestamp": timestamp,
        "X-TC-Nonce": nonce,
        "X-TC-Signature": signature(
            creds.secret_key, string_to_sign(method, creds.secret_id, nonce, timestamp, uri, body)
        ),
        "AppId": creds.app_id,
        "X-TC-Registered": "1",
    }
    if creds.sdk_id:
        headers["SdkId"] = creds.sdk_id
    return headers


def phone_hash(phone: str, secret_id: str) -> str:
    """How Tencent reports a participant's phone: SHA256(phone + "/" + SecretId), hex."""
    return hashlib.sha256(f"{phone}/{secret_id}".encode()).hexdigest()


# --- parsing (pure) --------------------------------------------------------------------------------------


def decode_name(value: str) -> str:
    """`user_name` is Base64 (UTF-8) in the participant list; a value that is not is kept as it is."""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value


def seconds(value: object) -> datetime | None:
    """A Tencent time: Unix seconds as a string or number; "" / "0" / missing mean none."""
    if value in (None, "", "0", 0):
        return None
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def meeting_ref(meeting_id: str, sub_meeting_id: str | None) -> str:
    return f"{meeting_id}:{sub_meeting_id}" if sub_meeting_id else meeting_id


def participant_record(item: Mapping[str, Any], ref: str, where: str) -> ExternalRecord:
    """One participant row (one join on one device) as an ExternalRecord."""
    user = str(item.get("userid") or item.get("open_id") or "") or None
    instance = str(item.get("instanceid", "")) or None
    ms_open_id = str(item.get("ms_open_id") or "")
    join_at = seconds(item.get("join_time"))
    phone = str(item.get("phone") or "") or None
    return ExternalRecord(
        platform=Platform.TENCENT,
        external_meeting_ref=ref,
        row_key=make_row_key(
            "tencent",
            ref,
            user or item.get("uuid") or ms_open_id,
            ms_open_id,
            instance,
            item.get("join_time"),
        ),
        external_user_id=user,
        display_name=decode_name(str(item.get("user_name") or "")),
        join_at=join_at,
        leave_at=seconds(item.get("left_time")),
        instance=instance,
        connection_id=ms_open_id or None,
        is_pstn=instance == PSTN_INSTANCE,
        phone=phone,
        phone_hashed=phone is not None,
        trust=Trust.HIGH,
        raw_ref=where,
    )


def meeting_info(item: Mapping[str, Any]) -> MeetingInfo:
    subs = item.get("sub_meetings") or []
    return MeetingInfo(
        meeting_id=str(item.get("meeting_id", "")),
        meeting_code=str(item.get("meeting_code", "")),
        subject=str(item.get("subject", "")),
        start_at=seconds(item.get("start_time")),
        end_at=seconds(item.get("end_time")),
        recurring=int(item.get("meeting_type") or 0) == 1,
        sub_meeting_ids=tuple(str(s.get("sub_meeting_id")) for s in subs if s.get("sub_meeting_id")),
    )


# --- the client ------------------------------------------------------------------------------------------


def _nonce() -> str:
    return str(secrets.randbelow(2**31 - 1) + 1)


class TencentClient:
    """Calls Tencent Meeting as one enterprise app. The caller owns the aiohttp session."""

    platform = "Tencent Meeting"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        creds: TencentCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._creds = creds
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff
        self._clock = clock

    async def get(self, path: str, query: Mapping[str, str | int]) -> dict[str, Any]:
        uri = f"{path}?{urlencode(query)}" if query else path
        return await with_retries(self.platform, f"GET {path}", self._backoff, lambda: self._once("GET", uri))

    async def _once(self, method: str, uri: str, body: str = "") -> dict[str, Any]:
        # A fresh nonce and timestamp on every attempt: a retry with the old pair is a replay (190301).
        headers = signed_headers(self._creds, method, uri, body, _nonce(), str(int(self._clock())))
        try:
            async with self._http.request(
                method, self._base + uri, data=body or None, headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.text()
                status = resp.status
        except TimeoutError as exc:
            raise Retryable("timed out") from exc
        except aiohttp.ClientError as exc:
            raise Retryable(type(exc).__name__) from exc
        payload = _json(text)
        if status == 200 and payload is not None:
            return payload
        error = (payload or {}).get("error_info") or {}
        code = error.get("error_code")
        if not isinstance(code, int):
            if status >= 500 or status == 429:
                raise Retryable(f"HTTP {status}")
            raise PlatformRefused(f"Tencent Meeting answered HTTP {status}", details={"status": status})
        message = str(error.get("message", ""))[:200]
        details = {"platform_code": code, "platform_message": message}
        if code in AUTH_ERRORS:
            raise WrongCredentials(
                f"Tencent Meeting refused the credentials ({code} {message}): check AppId, SecretId, "
                "SecretKey and SdkId",
                details=details,
            )
        if code == REPLAYED_NONCE:
            raise Retryable("nonce replay reported (190301)")
        if code in MEETING_ERRORS:
            raise UnknownMeeting(f"Tencent Meeting does not know this meeting ({code})", details=details)
        if status >= 500 and code not in (9042,):
            raise Retryable(f"HTTP {status} error {code}")
        raise PlatformRefused(f"Tencent Meeting refused the request ({code} {message})", details=details)

    async def meeting_by_code(self, meeting_code: str) -> MeetingInfo:
        data = await self.get(
            "/v1/meetings", {"meeting_code": meeting_code, "userid": self._creds.userid, "instanceid": 1}
        )
        items = data.get("meeting_info_list") or []
        if not items:
            raise UnknownMeeting(f"Tencent Meeting has no meeting with code {meeting_code}")
        return meeting_info(items[0])

    async def meeting(self, meeting_id: str) -> MeetingInfo:
        data = await self.get(f"/v1/meetings/{meeting_id}", {"userid": self._creds.userid, "instanceid": 1})
        items = data.get("meeting_info_list") or []
        if not items:
            raise UnknownMeeting(f"Tencent Meeting has no meeting {meeting_id}")
        return meeting_info(items[0])

    async def participant_pages(
        self, meeting_id: str, sub_meeting_id: str | None = None, page_size: int = PAGE_SIZE_MAX
    ) -> AsyncIterator[list[ExternalRecord]]:
        """The participant list page by page (pos/size until has_remaining is false)."""
        ref = meeting_ref(meeting_id, sub_meeting_id)
        pos = 0
        for page in range(1, 10_000):
            query: dict[str, str | int] = {"userid": self._creds.userid}
            if sub_meeting_id:
                query["sub_meeting_id"] = sub_meeting_id
            query.update(pos=pos, size=min(page_size, PAGE_SIZE_MAX))
            data = await self.get(f"/v1/meetings/{meeting_id}/participants", query)
            rows = data.get("participants") or []
            yield [participant_record(item, ref, f"page {page} #{i + 1}") for i, item in enumerate(rows)]
            if not data.get("has_remaining"):
                return
            next_pos = int(data.get("next_pos") or 0)
            if next_pos <= pos:  # a platform that does not advance would loop forever
                raise PlatformRefused("Tencent Meeting paging did not advance", details={"pos": pos})
            pos = next_pos

    async def participants(self, meeting_id: str, sub_meeting_id: str | None = None) -> list[ExternalRecord]:
        out: list[ExternalRecord] = []
        async for page in self.participant_pages(meeting_id, sub_meeting_id):
            out.extend(page)
        return out


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
