"""Domain errors: raised by services, carrying no HTTP status; infra.http maps them to one JSON shape."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a caller can cause. `code` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class Invalid(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


class TooMany(DomainError):
    code = "too_many_requests"


class Unavailable(DomainError):
    code = "unavailable"
