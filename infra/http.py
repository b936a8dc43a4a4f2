"""HTTP basics shared by every handler: the one JSON error shape, its middleware, body helpers, and the
input boundary (bounded JSON bodies, path ids within BIGINT, undecodable headers and cookies dropped).

Error shape (pinned by tests/unit/test_errors.py):
    {"error": {"code": "<stable code>", "message": "<human text>", "field": "<name>" | null,
               "details": {...} | null}}
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from infra import errors
from infra.text import for_log, has_lone_surrogate

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

# Our bodies nest three levels at most; 32 leaves room and stays far below Python's recursion limit.
JSON_MAX_DEPTH = 32
BIGINT_MAX = 2**63 - 1


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
        log.exception("unhandled error method=%s path=%s", request.method, for_log(request.path))
        return error_response(500, "internal_error", "internal server error")


def _digits_params(request: web.Request) -> list[str]:
    """Names of the matched route's `{name:\\d+}` parameters (ids), read from its public route info."""
    resource = request.match_info.route.resource
    pattern = resource.get_info().get("pattern") if resource is not None else None
    if not isinstance(pattern, re.Pattern):
        return []
    return [name for name in request.match_info if f"(?P<{name}>\\d+)" in pattern.pattern]


def _decodable_headers(request: web.Request) -> CIMultiDict[str] | None:
    """The request's headers without what did not decode as UTF-8 (aiohttp keeps such bytes as lone
    surrogates): such a header is dropped, such a cookie is dropped from Cookie. None if all were fine."""
    if not any(has_lone_surrogate(v) for v in request.headers.values()):
        return None
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if not has_lone_surrogate(value):
            kept.add(name, value)
        elif name.lower() == "cookie":
            cookies = [c for c in value.split(";") if not has_lone_surrogate(c)]
            if cookies:
                kept.add(name, ";".join(cookies))
    return kept


@web.middleware
async def input_boundary_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every route may rely on before its handler runs (docs/security.md, "Input and headers"):
    a `{name:\\d+}` path id is ASCII digits within BIGINT (else 404: no such thing can exist), and no
    header or cookie holds undecodable bytes (a bad cookie is treated as no cookie)."""
    for name in _digits_params(request):
        value = request.match_info[name]
        if not value.isascii() or len(value) > 19 or int(value) > BIGINT_MAX:
            # An HTTP 404 rather than NotFound, so that a page URL gets the Chinese 404 page.
            raise web.HTTPNotFound(text=f"no {name.removesuffix('_id')} has this id")
    headers = _decodable_headers(request)
    if headers is not None:
        log.info("dropped undecodable header bytes method=%s path=%s", request.method, for_log(request.path))
        request = request.clone(headers=headers)
    return await handler(request)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _check_tree(body: Any) -> None:
    """Refuse nesting deeper than JSON_MAX_DEPTH and lone surrogates in any key or string (`"\\ud800"`
    decodes to one): Invalid naming the top-level field where it was found."""
    stack: list[tuple[Any, str | None, int]] = [(body, None, 1)]
    while stack:
        value, field, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise errors.Invalid(f"body nests deeper than {JSON_MAX_DEPTH} levels", field=field)
        if isinstance(value, str):
            if has_lone_surrogate(value):
                raise errors.Invalid(
                    f"{field or 'body'} contains a lone surrogate (not valid Unicode text)", field=field
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                if has_lone_surrogate(key):
                    raise errors.Invalid("a field name contains a lone surrogate", field=field)
                stack.append((item, field or key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, field, depth + 1) for item in value)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (UTF-8, at most the app's client_max_size, nested at most
    JSON_MAX_DEPTH deep, finite numbers, no lone surrogates), or Invalid naming what is wrong."""
    ctype = request.content_type
    if ctype != "application/json":
        raise errors.Invalid(
            f"expected Content-Type application/json, got {ctype or 'none'}", field="Content-Type"
        )
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise errors.Invalid("body is not UTF-8 text") from None
    except RecursionError:
        raise errors.Invalid(f"body nests deeper than {JSON_MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise errors.Invalid(f"body is not valid JSON: {exc}") from None
    except ValueError:  # NaN, Infinity, 1e999, an integer of thousands of digits
        raise errors.Invalid("body holds a number out of range (NaN, Infinity or too many digits)") from None
    _check_tree(body)
    if not isinstance(body, dict):
        raise errors.Invalid("body must be a JSON object")
    return body


def json_ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str)
    )


async def read_upload(request: web.Request, field: str, max_bytes: int) -> tuple[IO[bytes], str]:
    """The multipart/form-data file in `field`, spooled (memory, then a temporary file) and rewound, with
    its file name; Invalid without it, 413 beyond `max_bytes`. The caller closes the file."""
    if request.content_type != "multipart/form-data":
        raise errors.Invalid(
            f"expected Content-Type multipart/form-data, got {request.content_type or 'none'}",
            field="Content-Type",
        )
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != field:
            await part.release()
            continue
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - returned to the caller
        size = 0
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                spool.close()
                raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=size)
            spool.write(chunk)
        spool.seek(0)
        return spool, part.filename or ""
    raise errors.Invalid(f"no file in the form field {field!r}", field=field)
