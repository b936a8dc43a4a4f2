"""The courseware upload routes' rows of the authorization matrix (test_catalog_authorization.MATRIX): only
experts start uploads; an upload is its owner's alone (anyone else: 404). Each build makes an open upload
of the seeded expert's afresh (its multipart upload unknown to the store: listing finds no parts,
completing is 409, aborting is fine)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from catalog.models import CoursewareUpload

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Built = tuple[str, dict[str, Any] | None]


async def _open_upload(w: World) -> int:
    now = datetime.now(UTC)
    owner = w.actors["expert"].person_id
    async with w.db.sessions.begin() as s:
        row = CoursewareUpload(
            owner_person_id=owner,
            object_key=f"courseware/{owner}/{uuid.uuid4().hex}.mp4",
            s3_upload_id=uuid.uuid4().hex,
            size_bytes=20 * 1024 * 1024,
            part_size=16 * 1024 * 1024,
            content_type="video/mp4",
            file_name="讲座.mp4",
            state="open",
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        s.add(row)
        await s.flush()
        return row.id


async def _start(w: World, _role: str) -> Built:
    return "/api/courseware/uploads", {
        "file_name": "讲座.mp4",
        "size_bytes": 1000,
        "content_type": "video/mp4",
    }


async def _get(w: World, _role: str) -> Built:
    return f"/api/courseware/uploads/{await _open_upload(w)}", None


async def _parts(w: World, _role: str) -> Built:
    return f"/api/courseware/uploads/{await _open_upload(w)}/parts", {"numbers": [1, 2]}


async def _complete(w: World, _role: str) -> Built:
    body = {"parts": [{"number": 1, "etag": "a" * 32}, {"number": 2, "etag": "b" * 32}]}
    return f"/api/courseware/uploads/{await _open_upload(w)}/complete", body


async def _abort(w: World, _role: str) -> Built:
    return f"/api/courseware/uploads/{await _open_upload(w)}", None


def upload_cases(case: Callable[..., Any]) -> dict[str, Any]:
    """The rows, built with the matrix's own `case(default, build, **overrides)`."""
    return {
        "POST /api/courseware/uploads": case(403, _start, anonymous=401, expert=201),
        "GET /api/courseware/uploads/{upload_id}": case(404, _get, anonymous=401, expert=200),
        "POST /api/courseware/uploads/{upload_id}/parts": case(404, _parts, anonymous=401, expert=200),
        # The owner passes; the store has no such multipart upload, so there is nothing to complete.
        "POST /api/courseware/uploads/{upload_id}/complete": case(404, _complete, anonymous=401, expert=409),
        "DELETE /api/courseware/uploads/{upload_id}": case(404, _abort, anonymous=401, expert=200),
    }
