"""Helpers for the courseware tests: courseware made through the API, completed uploads and finished
processing as the upload and rendition pipeline leaves them (an upload row `completed`; a version
`ready` with a finalized recording on its own session, catalog.courseware.placement), reviews."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog.courseware import placement, review
from catalog.courseware.rules import Decision
from catalog.domain import Caller, Role
from catalog.models import CoursewareReview, CoursewareUpload, CoursewareVersion

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def create_courseware(
    client: Client, w: World, owner: str = "expert", *, title: str = "BIM 技术在施工管理中的应用"
) -> dict[str, Any]:
    body = {"title": title, "category": "professional", "description": "一线工程师的经验分享"}
    resp = await client.post("/api/courseware", json=body, headers=w.actors[owner].headers)
    assert resp.status == 201, await resp.text()
    view: dict[str, Any] = await resp.json()
    return view


async def completed_upload(
    w: World, owner: str = "expert", *, name: str = "lecture.mp4", content_type: str = "video/mp4"
) -> int:
    """A completed upload of `owner`'s, as the resumable upload leaves it once the object is whole."""
    now = datetime.now(UTC)
    async with w.db.sessions.begin() as s:
        upload = CoursewareUpload(
            owner_person_id=w.actors[owner].person_id,
            object_key=f"courseware/{uuid.uuid4().hex}/{name}",
            s3_upload_id=uuid.uuid4().hex,
            size_bytes=4_000_000,
            part_size=5 * 1024 * 1024,
            content_type=content_type,
            file_name=name,
            state="completed",
            created_at=now,
            expires_at=now + timedelta(days=1),
            completed_at=now,
        )
        s.add(upload)
        await s.flush()
        return upload.id


async def rendered(w: World, version_id: int, duration_s: float = 120.0) -> tuple[int, str]:
    """Finish a version's processing as the pipeline does: checked (duration), rendered to HLS under the
    version's own session, recording registered. (session id, recording id)."""
    session_id = await placement.rendition_session(w.db, version_id, datetime.now(UTC))
    recording_id = await w.recording(session_id, duration_s=duration_s, screen=False)
    async with w.db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id)
        assert version is not None
        version.processing = "ready"
        version.duration_s = duration_s
        version.width, version.height = 1280, 720
        version.recording_id = recording_id
    return session_id, recording_id


async def add_version(
    client: Client, w: World, courseware_id: int, owner: str = "expert", *, slides: bool = False
) -> dict[str, Any]:
    """POST a new version from a fresh completed upload (and slides); the new version's view."""
    body: dict[str, Any] = {"upload_id": await completed_upload(w, owner)}
    if slides:
        body["slides_upload_id"] = await completed_upload(
            w, owner, name="slides.pdf", content_type="application/pdf"
        )
    resp = await client.post(
        f"/api/courseware/{courseware_id}/versions", json=body, headers=w.actors[owner].headers
    )
    assert resp.status == 201, await resp.text()
    view = await resp.json()
    newest: dict[str, Any] = view["versions"][0]
    return newest


async def ready_version(
    client: Client,
    w: World,
    courseware_id: int,
    owner: str = "expert",
    *,
    duration_s: float = 120.0,
    slides: bool = False,
    submit: bool = True,
) -> tuple[int, int, str]:
    """A version uploaded, processed and (unless `submit` is false) submitted: (version id, session id,
    recording id)."""
    version = await add_version(client, w, courseware_id, owner, slides=slides)
    session_id, recording_id = await rendered(w, version["id"], duration_s)
    if submit:
        resp = await client.post(
            f"/api/courseware/versions/{version['id']}/submit", headers=w.actors[owner].headers
        )
        assert resp.status == 200, await resp.text()
    return version["id"], session_id, recording_id


async def decide(
    client: Client, w: World, version_id: int, decision: str, comments: str = "", who: str = "reviewer"
) -> Any:
    body = {"decision": decision, "comments": comments}
    return await client.post(
        f"/api/courseware/versions/{version_id}/reviews", json=body, headers=w.actors[who].headers
    )


async def approved(client: Client, w: World, version_id: int) -> dict[str, Any]:
    resp = await decide(client, w, version_id, "approved", "内容准确，同意共享")
    assert resp.status == 201, await resp.text()
    view: dict[str, Any] = await resp.json()
    return view


async def decided_at(w: World, version_id: int, decision: str) -> datetime:
    async with w.db.sessions.begin() as s:
        at = await s.scalar(
            select(CoursewareReview.decided_at).where(
                CoursewareReview.version_id == version_id, CoursewareReview.decision == decision
            )
        )
    assert at is not None
    return at


async def decide_at(w: World, version_id: int, decision: str, at: datetime, comments: str = "") -> None:
    """The reviewer's decision through the review service at a chosen time (scripted evidence around it)."""
    reviewer = Caller(
        w.actors["reviewer"].person_id, None, frozenset({(Role.REVIEWER, w.orgs["association"])})
    )
    await review.decide_version(w.db, reviewer, version_id, Decision(decision), comments, at)
