"""A fake Tencent Meeting REST API on loopback that checks what the real one checks (DOMAIN §6.1).

It recomputes every X-TC-Signature from the request, refuses a timestamp more than 5 minutes off, refuses
a reused timestamp+nonce (190301), answers with Tencent's error shape
(`{"error_info": {"error_code", "message"}}`, 400 for request errors, 500 for service errors), pages
participants with pos/size/has_remaining/next_pos (size ≤ 100), requires sub_meeting_id for recurring
meetings, and Base64-encodes user names. Tests add meetings and tell it to fail (`fail_next`).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from integrations.tencent import signature, string_to_sign

SKEW_S = 300
SIGNATURE_FAILED = 200003
SIGNATURE_EXPIRED = 200002  # the real code for an expired timestamp is not documented here [unverified]
NONCE_REPLAYED = 190301
MEETING_NOT_EXIST = 9003
BAD_ENTERPRISE = 50000


@dataclass
class FakeParticipant:
    userid: str
    name: str
    join_time: int
    left_time: int | None
    instanceid: int = 1
    uuid: str = ""
    ms_open_id: str = ""
    phone: str = ""  # already hashed, as Tencent sends it

    def as_json(self) -> dict[str, Any]:
        return {
            "userid": self.userid,
            "uuid": self.uuid or (f"WM{self.userid}" if self.userid else ""),
            "ms_open_id": self.ms_open_id,
            "open_id": "",
            "user_name": base64.b64encode(self.name.encode()).decode(),
            "instanceid": self.instanceid,
            "user_role": 0,
            "join_time": str(self.join_time),
            "left_time": "" if self.left_time is None else str(self.left_time),
            "phone": self.phone,
        }


@dataclass
class FakeMeeting:
    meeting_id: str
    meeting_code: str
    subject: str
    start_time: int
    end_time: int
    creator: str
    participants: list[FakeParticipant] = field(default_factory=list)
    # recurring meetings: sub_meeting_id -> its participants (the top-level list is then unused)
    subs: dict[str, list[FakeParticipant]] = field(default_factory=dict)


@dataclass
class Failure:
    status: int = 503
    error_code: int | None = None
    delay_s: float = 0.0  # longer than the client's timeout: a timeout
    body: str = "upstream unavailable"


class FakeTencent:
    def __init__(
        self,
        *,
        app_id: str,
        secret_id: str,
        secret_key: str,
        sdk_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id, self.secret_id, self.secret_key, self.sdk_id = app_id, secret_id, secret_key, sdk_id
        self.clock = clock
        self.meetings: dict[str, FakeMeeting] = {}
        self.seen: dict[tuple[str, str], float] = {}
        self.failures: list[Failure] = []
        self.requests: list[str] = []  # path?query of every request that reached the handlers
        self.page_requests = 0

    def add(self, meeting: FakeMeeting) -> FakeMeeting:
        self.meetings[meeting.meeting_id] = meeting
        return meeting

    def fail_next(self, count: int = 1, **failure: Any) -> None:
        self.failures.extend(Failure(**failure) for _ in range(count))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v1/meetings", self._by_code)
        app.router.add_get("/v1/meetings/{meeting_id}", self._by_id)
        app.router.add_get("/v1/meetings/{meeting_id}/participants", self._participants)
        return app

    # --- checks the real service makes -------------------------------------------------------------

    @staticmethod
    def _error(code: int, message: str, status: int = 400) -> web.Response:
        return web.json_response({"error_info": {"error_code": code, "message": message}}, status=status)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.failures:
            failure = self.failures.pop(0)
            if failure.delay_s:
                await asyncio.sleep(failure.delay_s)
            if failure.error_code is not None:
                return self._error(failure.error_code, "injected", failure.status)
            return web.Response(status=failure.status, text=failure.body)
        refusal = await self._check_auth(request)
        if refusal is not None:
            return refusal
        self.requests.append(request.path_qs)
        response: web.StreamResponse = await handler(request)
        return response

    async def _check_auth(self, request: web.Request) -> web.Response | None:
        h = request.headers
        needed = ("X-TC-Key", "X-TC-Timestamp", "X-TC-Nonce", "X-TC-Signature", "AppId")
        if any(name not in h for name in needed):
            return self._error(SIGNATURE_FAILED, "Signature failed: missing header")
        if h["AppId"] != self.app_id or (self.sdk_id and h.get("SdkId") != self.sdk_id):
            return self._error(BAD_ENTERPRISE, "invalid enterprise id")
        if h["X-TC-Key"] != self.secret_id:
            return self._error(SIGNATURE_FAILED, "Signature failed")
        body = await request.text()
        expected = signature(
            self.secret_key,
            string_to_sign(
                request.method, self.secret_id, h["X-TC-Nonce"], h["X-TC-Timestamp"], request.path_qs, body
            ),
        )
        if h["X-TC-Signature"] != expected:
            return self._error(SIGNATURE_FAILED, "Signature failed")
        try:
            ts = int(h["X-TC-Timestamp"])
        except ValueError:
            return self._error(SIGNATURE_FAILED, "Signature failed: bad timestamp")
        now = self.clock()
        if abs(now - ts) > SKEW_S:
            return self._error(SIGNATURE_EXPIRED, "Signature expired")
        key = (h["X-TC-Timestamp"], h["X-TC-Nonce"])
        self.seen = {k: at for k, at in self.seen.items() if now - at <= SKEW_S}
        if key in self.seen:
            return self._error(NONCE_REPLAYED, "repeated request (timestamp and nonce already used)")
        self.seen[key] = now
        return None

    # --- endpoints ---------------------------------------------------------------------------------

    def _info(self, m: FakeMeeting) -> dict[str, Any]:
        info: dict[str, Any] = {
            "subject": m.subject,
            "meeting_id": m.meeting_id,
            "meeting_code": m.meeting_code,
            "start_time": str(m.start_time),
            "end_time": str(m.end_time),
            "meeting_type": 1 if m.subs else 0,
        }
        if m.subs:
            info["sub_meetings"] = [
                {
                    "sub_meeting_id": sid,
                    "status": 0,
                    "start_time": str(m.start_time),
                    "end_time": str(m.end_time),
                }
                for sid in m.subs
            ]
        return info

    async def _by_code(self, request: web.Request) -> web.Response:
        code = request.query.get("meeting_code", "")
        if not request.query.get("userid") or not request.query.get("instanceid"):
            return self._error(10001, "userid and instanceid are required")
        found = [m for m in self.meetings.values() if m.meeting_code == code]
        if not found:
            return self._error(MEETING_NOT_EXIST, "MEETING NOT EXIST", 500)
        return web.json_response({"meeting_number": 1, "meeting_info_list": [self._info(found[0])]})

    async def _by_id(self, request: web.Request) -> web.Response:
        m = self.meetings.get(request.match_info["meeting_id"])
        if m is None:
            return self._error(MEETING_NOT_EXIST, "MEETING NOT EXIST", 500)
        return web.json_response({"meeting_number": 1, "meeting_info_list": [self._info(m)]})

    async def _participants(self, request: web.Request) -> web.Response:
        m = self.meetings.get(request.match_info["meeting_id"])
        if m is None:
            return self._error(MEETING_NOT_EXIST, "MEETING NOT EXIST", 500)
        q = request.query
        if q.get("userid") != m.creator:
            return self._error(9042, "no permission: only the creator may read participants")
        try:
            pos, size = int(q.get("pos", "0")), int(q.get("size", "20"))
        except ValueError:
            return self._error(10001, "pos and size must be integers")
        if not 0 < size <= 100 or pos < 0:
            return self._error(10001, "size must be 1..100")
        rows = m.participants
        if m.subs:
            sub = q.get("sub_meeting_id", "")
            if sub not in m.subs:
                return self._error(10001, "sub_meeting_id is required for a recurring meeting")
            rows = m.subs[sub]
        self.page_requests += 1
        page = rows[pos : pos + size]
        remaining = pos + size < len(rows)
        return web.json_response(
            {
                "meeting_id": m.meeting_id,
                "meeting_code": m.meeting_code,
                "subject": m.subject,
                "schedule_start_time": str(m.start_time),
                "schedule_end_time": str(m.end_time),
                "total_count": len(rows),
                "has_remaining": remaining,
                "next_pos": pos + size if remaining else 0,
                "participants": [p.as_json() for p in page],
            }
        )
