"""HTTP basics shared by every handler: the one JSON error shape, its middleware, body helpers.

Error shape (pinned by tests/unit/test_errors.py):
    {"error": {"code": "<stable code>", "message": "<human text>", "field": "<name>" | null,
               "details": {...} | null}}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from infra import errors

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[type[errors.DomainError], int] = {
    errors.Invalid: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooMany: 429,
    errors.Unavailable: 503,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(code: str, message: str, field: str | None = None, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, "details": details}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(code, message, field, details),
        status=status,
        headers=headers,
        dumps=lambda o: json.dumps(o, ensure_ascii=False),
    )


def status_for(exc: errors.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_CODE:
            return STATUS_BY_CODE[cls]
    return 400


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every 4xx/5xx leaves in the one JSON shape; domain errors get their status here, and only here."""
    try:
        return await handler(request)
    except errors.DomainError as exc:
        headers: dict[str, str] = {}
        if isinstance(exc, errors.Unauthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        retry_after = (exc.details or {}).get("retry_after_s")
        if isinstance(exc, errors.TooMany | errors.Unavailable) and isinstance(retry_after, int):
            headers["Retry-After"] = str(retry_after)
        return error_response(status_for(exc), exc.code, exc.message, exc.field, exc.details, headers or None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        resp = error_response(exc.status, code, message)
        for name in ("Allow", "Location", "Retry-After"):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or Invalid naming what is wrong."""
    ctype = request.content_type
    if ctype != "application/json":
        raise errors.Invalid(
            f"expected Content-Type application/json, got {ctype or 'none'}", field="Content-Type"
        )
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.Invalid(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise errors.Invalid("body must be a JSON object")
    return body


def json_ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str)
    )
