"""Builds the OpenAPI 3.1 document of /api from the route table in catalog.api."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from catalog.fields import BIGINT_MAX
from catalog.schemas import QUERY

# name and pattern; the pattern may hold braces of its own (`{1,64}`), one level deep.
_TYPED_PARAM = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})*))?\}")

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
                "details": {"type": ["object", "null"]},
            },
        }
    },
}


class RouteLike(Protocol):
    """What the document needs of a route (catalog.api.Route)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def access(self) -> str: ...
    @property
    def tag(self) -> str: ...
    @property
    def body(self) -> dict[str, Any] | None: ...
    @property
    def query(self) -> tuple[str, ...]: ...
    @property
    def responses(self) -> dict[int, str]: ...
    @property
    def login(self) -> bool: ...


def _path_schema(pattern: str) -> dict[str, Any]:
    """Digits-only patterns are catalog ids; anything else is a string matching the pattern."""
    if pattern in ("", "\\d+"):
        return {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
    return {"type": "string", "pattern": f"^{pattern}$"}


def openapi_path(path: str) -> str:
    """`/api/courses/{course_id:\\d+}` -> `/api/courses/{course_id}`."""
    return _TYPED_PARAM.sub(r"{\1}", path)


def _operation(route: RouteLike) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(pattern)}
        for name, pattern in _TYPED_PARAM.findall(route.path)
    ]
    params += [
        # A tag may give a parameter its own meaning (e.g. "review.status" for fraud flags).
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": QUERY.get(f"{route.tag}.{name}", QUERY[name]),
        }
        for name in route.query
    ]
    # Downloads (CSV, XLSX) answer their own content type; everything else answers JSON.
    ctype = getattr(route, "content_type", "application/json")
    ok_schema: dict[str, Any] = {"type": "object"} if ctype == "application/json" else {"type": "string"}
    responses: dict[str, Any] = {
        str(status): (
            {"description": text}
            if status == 204
            else {
                "description": text,
                "content": {ctype: {"schema": ok_schema}}
                if status < 400
                else {"application/json": {"schema": ERROR}},
            }
        )
        for status, text in route.responses.items()
    }

    def error(status: int, text: str) -> None:
        responses.setdefault(
            str(status), {"description": text, "content": {"application/json": {"schema": ERROR}}}
        )

    error(400, "Invalid input")
    if params and any(p["in"] == "path" for p in params):
        # An id in the path that names nothing (or nothing the caller may see), also one beyond BIGINT.
        error(404, "Not found")
    if route.body is not None:
        error(413, "Body too large")
    if route.method != "GET" and route.login:
        error(409, "Not possible in the current state")
    if route.login:
        responses.setdefault(
            "401", {"description": "Not logged in", "content": {"application/json": {"schema": ERROR}}}
        )
        responses.setdefault(
            "403",
            {
                "description": "Not allowed (role, organization or CSRF token)",
                "content": {"application/json": {"schema": ERROR}},
            },
        )
    op: dict[str, Any] = {
        "summary": route.summary,
        "description": f"Who may call it: {route.access}.",
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{openapi_path(route.path)}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_")
        .replace(".", "_"),
        "parameters": params,
        "responses": responses,
    }
    if route.login:
        op["security"] = [{"session": []}]
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    return op


def document(routes: Iterable[RouteLike]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lectern catalog API",
            "version": "0.1.0",
            "description": "Courses, sessions, enrollments and accounts. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "lectern_session",
                    "description": "State-changing requests also need the X-CSRF-Token header from login.",
                }
            },
            "schemas": {"Error": ERROR},
        },
    }
