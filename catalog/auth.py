"""Who is calling: the session cookie, the CSRF check on state-changing requests, `current_person`,
the known-device cookie, and the client's address (through trusted proxies only)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from aiohttp import web

from catalog import accounts
from catalog.db import Database
from catalog.domain import Caller
from catalog.keys import DATABASE
from infra import client_address as addresses
from infra.appkeys import SETTINGS
from infra.errors import Forbidden, Unauthenticated
from infra.settings import Settings

COOKIE = "lectern_session"
# Marks a browser that logged in before (catalog/accounts.py): sent only to the login routes.
DEVICE_COOKIE = "lectern_device"
DEVICE_COOKIE_PATH = "/api/auth"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CALLER: web.RequestKey[Caller | None] = web.RequestKey("catalog.caller")


def database(request: web.Request) -> Database:
    return request.app[DATABASE]


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def now() -> datetime:
    return datetime.now(UTC)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or the one forwarded by a proxy in LECTERN_TRUSTED_PROXIES."""
    return addresses.client_address(request.remote, request.headers, settings(request).trusted_proxies)


async def optional_person(request: web.Request) -> Caller | None:
    """The logged-in caller or None; for unsafe methods the X-CSRF-Token header must match."""
    if _CALLER in request:
        return request[_CALLER]
    token = request.cookies.get(COOKIE, "")
    caller = await accounts.authenticate(database(request), token, now()) if token else None
    if caller is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), caller.csrf_token.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header", field=CSRF_HEADER)
    request[_CALLER] = caller
    return caller


async def current_person(request: web.Request) -> Caller:
    """The logged-in caller, or Unauthenticated."""
    caller = await optional_person(request)
    if caller is None:
        raise Unauthenticated("log in first")
    return caller


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, token: str, max_age_s: int
) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age_s,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=settings(request).secure_cookies,
    )


def set_device_cookie(
    response: web.StreamResponse, request: web.Request, value: str, expires_at: datetime
) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=max(0, int((expires_at - now()).total_seconds())),
        path=DEVICE_COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=settings(request).secure_cookies,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
