"""DingTalk (钉钉) open API (DOMAIN §6.2): the app access token (cached until shortly before it expires),
video-conference members (millisecond times, nextToken paging) and live-broadcast watch totals, as
ExternalRecords.

Error shapes of the new gateway (api.dingtalk.com): a non-200 status with `{"code", "message",
"requestid"}`. Which `code` strings mean what is only partly documented [unverified]: 401/403 and an
"InvalidAuthentication"/"invalidClientIdOrSecret"-like code are taken as wrong credentials, 404 or a
"notFound"-like code as an unknown conference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp

from integrations.errors import PlatformRefused, UnknownMeeting, WrongCredentials
from integrations.records import ExternalRecord, Platform, Trust, make_row_key
from integrations.retry import DEFAULT_BACKOFF, Backoff, Retryable, with_retries

DEFAULT_BASE_URL = "https://api.dingtalk.com"
TOKEN_HEADER = "x-acs-dingtalk-access-token"
TOKEN_MARGIN_S = 300  # renew this long before the platform says the token expires
MEMBERS_PAGE = 100
WATCHERS_PAGE = 200  # the documented maximum of pageSize
# watchLiveTime / watchPlaybackTime carry no documented unit; the examples (189930, 3605000) read as
# milliseconds. DOMAIN §7 asks that the unit be explicit: it is this one constant.
WATCH_TIME_UNIT_S = 0.001


@dataclass(frozen=True)
class DingTalkCredentials:
    """An internal app's AppKey/AppSecret. `operator_union_id` is the unionId the live API requires
    (the broadcast's owner or an admin). The secret is kept out of repr()."""

    app_key: str
    app_secret: str = field(repr=False)
    operator_union_id: str = ""


def millis(value: object) -> datetime | None:
    if value in (None, "", 0, "0"):
        return None
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def member_record(item: Mapping[str, Any], conference_id: str, where: str) -> ExternalRecord:
    """One row of `memberModels` (unionId; some SDK versions call it userId)."""
    user = str(item.get("unionId") or item.get("userId") or "") or None
    join_raw = item.get("joinTime")
    open_ = item.get("attendStatus") == 3  # still in the meeting: closes at the session's end
    return ExternalRecord(
        platform=Platform.DINGTALK_CONF,
        external_meeting_ref=conference_id,
        row_key=make_row_key("dingtalk_conf", conference_id, user or item.get("userNick"), join_raw),
        external_user_id=user,
        display_name=str(item.get("userNick") or ""),
        join_at=millis(join_raw),
        leave_at=None if open_ else millis(item.get("leaveTime")),
        instance=str(item.get("deviceType") or "") or None,
        is_pstn=bool(item.get("pstnJoin")),
        trust=Trust.HIGH,
        raw_ref=where,
    )


def watcher_record(item: Mapping[str, Any], live_id: str, where: str, in_org: bool) -> ExternalRecord:
    """A live viewer's totals: no join/leave instants, so low trust (R21); people outside the
    organization have no identity at all and go to review."""
    user = (str(item.get("unionId") or "") or None) if in_org else None
    live_ms = float(item.get("watchLiveTime") or 0)
    name = str(item.get("name") or "")
    return ExternalRecord(
        platform=Platform.DINGTALK_LIVE,
        external_meeting_ref=live_id,
        row_key=make_row_key("dingtalk_live", live_id, user or f"outside:{name}"),
        external_user_id=user,
        display_name=name,
        join_at=None,
        leave_at=None,
        watched_s=live_ms * WATCH_TIME_UNIT_S,
        trust=Trust.LOW,
        raw_ref=where,
    )


class DingTalkClient:
    """Calls DingTalk as one internal app; the access token is fetched once and reused until it is
    about to expire (the platform throttles frequent token calls). The caller owns the aiohttp session."""

    platform = "DingTalk"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        creds: DingTalkCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._creds = creds
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff
        self._clock = clock
        self._token = ""
        self._token_until = 0.0
        self.token_fetches = 0

    async def _access_token(self) -> str:
        if self._token and self._clock() < self._token_until:
            return self._token
        body = {"appKey": self._creds.app_key, "appSecret": self._creds.app_secret}
        data = await with_retries(
            self.platform,
            "access token",
            self._backoff,
            lambda: self._send("POST", "/v1.0/oauth2/accessToken", {}, json.dumps(body), token=False),
        )
        token = str(data.get("accessToken") or "")
        if not token:
            raise WrongCredentials("DingTalk gave no access token: check AppKey and AppSecret")
        expire_in = float(data.get("expireIn") or 7200)
        self._token = token
        self._token_until = self._clock() + max(0.0, expire_in - TOKEN_MARGIN_S)
        self.token_fetches += 1
        return token

    async def get(self, path: str, query: Mapping[str, str | int]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            try:
                return await self._send("GET", path, query)
            except _TokenRejected:
                # Expired or revoked early: fetch a new token once, then a refusal is a real one.
                self._token = ""
                try:
                    return await self._send("GET", path, query)
                except _TokenRejected as exc:
                    raise WrongCredentials(
                        "DingTalk refused the access token: check the app's permissions", details=exc.details
                    ) from exc

        return await with_retries(self.platform, f"GET {path}", self._backoff, call)

    async def _send(
        self, method: str, path: str, query: Mapping[str, str | int], body: str = "", token: bool = True
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers[TOKEN_HEADER] = await self._access_token()
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        try:
            async with self._http.request(
                method, url, data=body or None, headers=headers, timeout=self._timeout
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
        if status >= 500 or status == 429:
            raise Retryable(f"HTTP {status}")
        code = str((payload or {}).get("code", ""))
        details = {"status": status, "platform_code": code}
        lowered = code.lower()
        if not token and status in (400, 401, 403):
            raise WrongCredentials("DingTalk refused AppKey/AppSecret", details=details)
        if status == 401 or "authentication" in lowered or "token" in lowered:
            raise _TokenRejected(details)
        if status == 403:
            raise WrongCredentials(
                "DingTalk refused the request: the app lacks the permission", details=details
            )
        if status == 404 or "notfound" in lowered.replace(".", "").replace("_", ""):
            raise UnknownMeeting("DingTalk does not know this conference or live broadcast", details=details)
        raise PlatformRefused(f"DingTalk refused the request ({status} {code})", details=details)

    async def conference_members(self, conference_id: str) -> list[ExternalRecord]:
        """Every member row of a video conference (nextToken paging)."""
        out: list[ExternalRecord] = []
        next_token = ""
        for page in range(1, 10_000):
            query: dict[str, str | int] = {"maxResults": MEMBERS_PAGE}
            if next_token:
                query["nextToken"] = next_token
            data = await self.get(f"/v1.0/conference/videoConferences/{conference_id}/members", query)
            rows = data.get("memberModels") or []
            out.extend(member_record(r, conference_id, f"page {page} #{i + 1}") for i, r in enumerate(rows))
            following = str(data.get("nextToken") or "")
            if not following or not rows:
                return out
            if following == next_token:
                raise PlatformRefused("DingTalk paging did not advance", details={"nextToken": following})
            next_token = following
        return out

    async def live_watchers(self, live_id: str) -> list[ExternalRecord]:
        """Watch totals of a live broadcast, inside and outside the organization (pageNumber paging)."""
        if not self._creds.operator_union_id:
            raise PlatformRefused("DingTalk live needs the operator's unionId in the credentials")
        out: list[ExternalRecord] = []
        for page in range(1, 10_000):
            query: dict[str, str | int] = {
                "liveId": live_id,
                "unionId": self._creds.operator_union_id,
                "pageNumber": page,
                "pageSize": WATCHERS_PAGE,
            }
            data = await self.get("/v1.0/live/lives/watchUsers", query)
            result = data.get("result") or {}
            inside = result.get("orgUsesList") or []
            outside = result.get("outOrgUserList") or []
            out.extend(
                watcher_record(r, live_id, f"page {page} #{i + 1}", True) for i, r in enumerate(inside)
            )
            out.extend(
                watcher_record(r, live_id, f"page {page} outside #{i + 1}", False)
                for i, r in enumerate(outside)
            )
            if len(inside) < WATCHERS_PAGE and len(outside) < WATCHERS_PAGE:
                return out
        return out


class _TokenRejected(Exception):
    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__("access token rejected")
        self.details = details


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
