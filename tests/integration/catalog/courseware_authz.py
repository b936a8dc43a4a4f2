"""The courseware routes' rows of the authorization matrix (test_catalog_authorization.MATRIX): who may
create, read, edit, version and submit courseware (its owner, an expert), who reviews (the association's
reviewers) and who reads slides. Each build makes what it needs afresh, owned by the seeded expert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from catalog.models import Courseware, CoursewareUpload, CoursewareVersion
from tests.integration.catalog.courseware_support import completed_upload, rendered

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Built = tuple[str, dict[str, Any] | None]


async def _courseware(w: World) -> int:
    now = datetime.now(UTC)
    async with w.db.sessions.begin() as s:
        cw = Courseware(
            owner_person_id=w.actors["expert"].person_id,
            title="BIM 技术应用",
            category="professional",
            description="",
            created_at=now,
            updated_at=now,
        )
        s.add(cw)
        await s.flush()
        return cw.id


async def _version(w: World, *, state: str = "draft", slides: bool = False) -> int:
    """A processed version of a fresh courseware of the expert's, in `state`."""
    cw = await _courseware(w)
    upload = await completed_upload(w)
    pdf = await completed_upload(w, name="slides.pdf", content_type="application/pdf") if slides else None
    async with w.db.sessions.begin() as s:
        row = await s.get(CoursewareUpload, upload)
        assert row is not None
        slides_row = await s.get(CoursewareUpload, pdf) if pdf is not None else None
        slides_key = slides_row.object_key if slides_row is not None else None
        version = CoursewareVersion(
            courseware_id=cw,
            version=1,
            media_kind="video",
            object_key=row.object_key,
            size_bytes=row.size_bytes,
            processing="processing",
            review_state=state,
            slides_object_key=slides_key,
            created_at=datetime.now(UTC),
            submitted_at=datetime.now(UTC) if state != "draft" else None,
        )
        s.add(version)
        await s.flush()
        row.version_id = version.id
        version_id = version.id
    await rendered(w, version_id)
    return version_id


async def _create(w: World, _role: str) -> Built:
    return "/api/courseware", {"title": "装配式建筑", "category": "professional", "description": "课件"}


async def _mine(w: World, _role: str) -> Built:
    return "/api/courseware", None


async def _one(w: World, _role: str) -> Built:
    return f"/api/courseware/{await _courseware(w)}", None


async def _edit(w: World, _role: str) -> Built:
    return f"/api/courseware/{await _courseware(w)}", {"title": "装配式建筑（修订）"}


async def _add_version(w: World, _role: str) -> Built:
    return f"/api/courseware/{await _courseware(w)}/versions", {"upload_id": await completed_upload(w)}


async def _submit(w: World, _role: str) -> Built:
    return f"/api/courseware/versions/{await _version(w)}/submit", None


async def _slides(w: World, _role: str) -> Built:
    return f"/api/courseware/versions/{await _version(w, state='submitted', slides=True)}/slides", None


async def _queue(w: World, _role: str) -> Built:
    return "/api/courseware/review-queue", None


async def _decide(w: World, _role: str) -> Built:
    version = await _version(w, state="submitted")
    return f"/api/courseware/versions/{version}/reviews", {"decision": "rejected", "comments": "画面模糊"}


def courseware_cases(case: Callable[..., Any]) -> dict[str, Any]:
    """The rows, built with the matrix's own `case(default, build, **overrides)`."""
    readers = {"expert": 200, "reviewer": 200, "bureau": 200, "admin": 200}
    return {
        "GET /api/courseware": case(200, _mine, anonymous=401),
        "POST /api/courseware": case(403, _create, anonymous=401, expert=201),
        # Someone else's courseware is not found; its owner, the reviewers and supervisors read it.
        "GET /api/courseware/{courseware_id}": case(404, _one, anonymous=401, **readers),
        "PATCH /api/courseware/{courseware_id}": case(404, _edit, anonymous=401, expert=200),
        "POST /api/courseware/{courseware_id}/versions": case(404, _add_version, anonymous=401, expert=201),
        "POST /api/courseware/versions/{version_id}/submit": case(404, _submit, anonymous=401, expert=200),
        # An unapproved version's slides: its owner and the reviewers only.
        "GET /api/courseware/versions/{version_id}/slides": case(
            403, _slides, anonymous=401, expert=200, reviewer=200
        ),
        "GET /api/courseware/review-queue": case(
            403, _queue, anonymous=401, reviewer=200, bureau=200, admin=200
        ),
        "POST /api/courseware/versions/{version_id}/reviews": case(403, _decide, anonymous=401, reviewer=201),
    }
