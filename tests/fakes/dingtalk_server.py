"""A fake DingTalk open API (api.dingtalk.com, DOMAIN §6.2) on loopback that checks what the real one does.

Access tokens come from POST /v1.0/oauth2/accessToken with the right appKey/appSecret, are valid for
`token_ttl_s` (7200 like the real ones; tests shorten it or `expire_tokens()`), and every data call must
carry a valid one in `x-acs-dingtalk-access-token`. Conference members page with nextToken/maxResults;
live watchers with pageNumber/pageSize (≤ 200, unionId required). Errors use the gateway's shape
`{"code", "message", "requestid"}`. Tests tell it to fail with `fail_next`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN_HEADER = "x-acs-dingtalk-access-token"


@dataclass
class FakeMember:
    union_id: str
    nick: str
    join_ms: int
    leave_ms: int | None
    pstn: bool = False

    def as_json(self, conference_id: str) -> dict[str, Any]:
        return {
            "conferenceId": conference_id,
            "unionId": self.union_id,
            "userNick": self.nick,
            "joinTime": self.join_ms,
            "leaveTime": self.leave_ms,
            "duration": None if self.leave_ms is None else self.leave_ms - self.join_ms,
            "host": False,
            "coHost": False,
            "attendStatus": 3 if self.leave_ms is None else 6,
            "outerOrgMember": False,
            "pstnJoin": self.pstn,
        }


@dataclass
class FakeWatcher:
    name: str
    watch_live_ms: int
    union_id: str = ""  # empty: a viewer outside the organization
    watch_playback_ms: int = 0


@dataclass
class Failure:
    status: int = 503
    delay_s: float = 0.0


@dataclass
class FakeDingTalk:
    app_key: str
    app_secret: str
    token_ttl_s: int = 7200
    clock: Callable[[], float] = time.monotonic
    conferences: dict[str, list[FakeMember]] = field(default_factory=dict)
    lives: dict[str, list[FakeWatcher]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at (clock)
    token_requests: int = 0
    failures: list[Failure] = field(default_factory=list)

    def fail_next(self, count: int = 1, **failure: Any) -> None:
        self.failures.extend(Failure(**failure) for _ in range(count))

    def expire_tokens(self) -> None:
        self.tokens = {t: 0.0 for t in self.tokens}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1.0/oauth2/accessToken", self._token)
        app.router.add_get("/v1.0/conference/videoConferences/{conference_id}/members", self._members)
        app.router.add_get("/v1.0/live/lives/watchUsers", self._watchers)
        return app

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "requestid": secrets.token_hex(8)}, status=status
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.failures:
            failure = self.failures.pop(0)
            if failure.delay_s:
                await asyncio.sleep(failure.delay_s)
            return web.Response(status=failure.status, text="gateway error")
        if request.path != "/v1.0/oauth2/accessToken":
            token = request.headers.get(TOKEN_HEADER, "")
            expires = self.tokens.get(token)
            if expires is None or self.clock() >= expires:
                return self._error(401, "InvalidAuthentication", "不合法的access_token")
        response: web.StreamResponse = await handler(request)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "MissingParameter", "body is not JSON")
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return self._error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token = secrets.token_hex(16)
        self.tokens[token] = self.clock() + self.token_ttl_s
        return web.json_response({"accessToken": token, "expireIn": self.token_ttl_s})

    async def _members(self, request: web.Request) -> web.Response:
        cid = request.match_info["conference_id"]
        members = self.conferences.get(cid)
        if members is None:
            return self._error(404, "conference.notFound", "会议不存在")
        try:
            start = int(request.query.get("nextToken") or "0")
            size = int(request.query.get("maxResults") or "128")
        except ValueError:
            return self._error(400, "InvalidParameter", "nextToken or maxResults")
        page = members[start : start + size]
        following = start + size if start + size < len(members) else None
        return web.json_response(
            {
                "memberModels": [m.as_json(cid) for m in page],
                "nextToken": "" if following is None else str(following),
                "totalCount": len(members),
            }
        )

    async def _watchers(self, request: web.Request) -> web.Response:
        q = request.query
        watchers = self.lives.get(q.get("liveId", ""))
        if not q.get("unionId") or not q.get("pageSize"):
            return self._error(400, "MissingParameter", "unionId and pageSize are required")
        if watchers is None:
            return self._error(404, "live.notFound", "直播不存在")
        number, size = int(q.get("pageNumber") or "1"), int(q["pageSize"])
        if not 0 < size <= 200:
            return self._error(400, "InvalidParameter", "pageSize must be 1..200")
        inside = [w for w in watchers if w.union_id]
        outside = [w for w in watchers if not w.union_id]
        lo, hi = (number - 1) * size, number * size
        return web.json_response(
            {
                "result": {
                    "orgUsesList": [
                        {
                            "deptName": "",
                            "name": w.name,
                            "unionId": w.union_id,
                            "userId": "",
                            "watchLiveTime": w.watch_live_ms,
                            "watchPlaybackTime": w.watch_playback_ms,
                            "watchProgressMs": 0,
                        }
                        for w in inside[lo:hi]
                    ],
                    "outOrgUserList": [
                        {
                            "name": w.name,
                            "watchLiveTime": w.watch_live_ms,
                            "watchPlaybackTime": w.watch_playback_ms,
                            "watchProgressMs": 0,
                        }
                        for w in outside[lo:hi]
                    ],
                }
            }
        )
