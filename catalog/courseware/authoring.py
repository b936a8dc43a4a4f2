"""The expert's side of shared courseware: create it (title, category, description), edit it, add versions
from completed uploads, submit a version for the association's review. Only the owner changes their
courseware; the owner and the reviewers read it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import audit
from catalog import fields as f
from catalog.courseware import views
from catalog.courseware.rules import Processing, ReviewState, check_submittable
from catalog.db import Database
from catalog.domain import Caller, Category, Role
from catalog.models import Courseware, CoursewareUpload, CoursewareVersion
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

FIELDS = {"title", "category", "description"}
PDF_TYPES = ("application/pdf",)


@dataclass(frozen=True)
class CoursewareDraft:
    title: str
    category: Category
    description: str


def draft(body: Mapping[str, Any]) -> CoursewareDraft:
    f.reject_unknown(body, FIELDS)
    return CoursewareDraft(
        title=f.required_text(body, "title", max_len=f.TITLE_MAX),
        category=f.required_choice(body, "category", Category),
        description=f.text(
            body, "description", max_len=f.DESCRIPTION_MAX, min_len=0, required=False, multiline=True
        )
        or "",
    )


def changes(body: Mapping[str, Any]) -> dict[str, Any]:
    f.reject_unknown(body, FIELDS)
    if not body:
        raise Invalid("nothing to change")
    out: dict[str, Any] = {}
    if "title" in body:
        out["title"] = f.required_text(body, "title", max_len=f.TITLE_MAX)
    if "category" in body:
        out["category"] = f.required_choice(body, "category", Category).value
    if "description" in body:
        out["description"] = (
            f.text(body, "description", max_len=f.DESCRIPTION_MAX, min_len=0, multiline=True) or ""
        )
    return out


def version_request(body: Mapping[str, Any]) -> tuple[int, int | None]:
    """(upload_id, slides_upload_id or None) of POST .../versions."""
    f.reject_unknown(body, {"upload_id", "slides_upload_id"})
    upload = f.identifier(body, "upload_id")
    slides = f.integer(body, "slides_upload_id", minimum=1, required=False, nullable=True)
    return upload, slides


def require_expert(caller: Caller) -> None:
    if not caller.holds(Role.EXPERT, anywhere=True):
        raise Forbidden("only experts share courseware")


def is_reviewer(caller: Caller) -> bool:
    return caller.holds(Role.REVIEWER, anywhere=True)


async def owned(s: AsyncSession, caller: Caller, courseware_id: int, *, lock: bool = False) -> Courseware:
    """The caller's own courseware: NotFound for anyone else's (or none)."""
    cw = await s.get(Courseware, courseware_id, with_for_update=lock)
    if cw is None or cw.owner_person_id != caller.person_id:
        raise NotFound(f"courseware {courseware_id} not found", field="courseware_id")
    return cw


async def readable(s: AsyncSession, caller: Caller, courseware_id: int) -> Courseware:
    """The courseware if the caller owns it, reviews courseware or supervises; NotFound otherwise."""
    cw = await s.get(Courseware, courseware_id)
    if cw is None or not (
        cw.owner_person_id == caller.person_id or is_reviewer(caller) or caller.is_supervisor
    ):
        raise NotFound(f"courseware {courseware_id} not found", field="courseware_id")
    return cw


async def create(db: Database, caller: Caller, d: CoursewareDraft, now: datetime) -> dict[str, Any]:
    require_expert(caller)
    async with db.sessions.begin() as s:
        cw = Courseware(
            owner_person_id=caller.person_id,
            owner_org_id=next((org for role, org in caller.roles if role == Role.EXPERT and org), None),
            title=d.title,
            category=d.category.value,
            description=d.description,
            created_at=now,
            updated_at=now,
        )
        s.add(cw)
        await s.flush()
        [view] = await views.load(s, [cw])
    log.info("courseware created courseware=%s person=%s", cw.id, caller.person_id)
    return view


async def mine(db: Database, caller: Caller) -> dict[str, Any]:
    """The caller's courseware, newest first, with versions and reviews."""
    async with db.sessions.begin() as s:
        rows = list(
            await s.scalars(
                select(Courseware)
                .where(Courseware.owner_person_id == caller.person_id)
                .order_by(Courseware.created_at.desc(), Courseware.id.desc())
            )
        )
        items = await views.load(s, rows)
    return {"items": items}


async def get(db: Database, caller: Caller, courseware_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        cw = await readable(s, caller, courseware_id)
        [view] = await views.load(s, [cw])
    return view


async def update(
    db: Database, caller: Caller, courseware_id: int, values: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The owner edits title, category, description. The shared course learners see takes them at the next
    approval: what learners read is what the association approved."""
    async with db.sessions.begin() as s:
        cw = await owned(s, caller, courseware_id, lock=True)
        for name, value in values.items():
            setattr(cw, name, value)
        cw.updated_at = now
        [view] = await views.load(s, [cw])
    return view


async def _upload(s: AsyncSession, caller: Caller, upload_id: int, field: str) -> CoursewareUpload:
    upload = await s.get(CoursewareUpload, upload_id, with_for_update=True)
    if upload is None or upload.owner_person_id != caller.person_id:
        raise NotFound(f"upload {upload_id} not found", field=field)
    if upload.state != "completed":
        raise Conflict(f"upload {upload_id} is not complete ({upload.state})", field=field)
    if upload.version_id is not None:
        raise Conflict(f"upload {upload_id} already belongs to a version", field=field)
    return upload


def _is_pdf(upload: CoursewareUpload) -> bool:
    return upload.content_type in PDF_TYPES or upload.file_name.lower().endswith(".pdf")


async def add_version(
    db: Database,
    caller: Caller,
    courseware_id: int,
    upload_id: int,
    slides_upload_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """A new version (the next number) from the caller's completed upload of a video (and optionally a
    completed upload of slides as PDF), in `processing` until its check and rendition are done
    (catalog.courseware.processing). Each upload makes one version only."""
    async with db.sessions.begin() as s:
        cw = await owned(s, caller, courseware_id, lock=True)
        upload = await _upload(s, caller, upload_id, "upload_id")
        slides = None
        if slides_upload_id is not None:
            if slides_upload_id == upload_id:
                raise Invalid(
                    "slides_upload_id must be another upload than upload_id", field="slides_upload_id"
                )
            slides = await _upload(s, caller, slides_upload_id, "slides_upload_id")
            if not _is_pdf(slides):
                raise Invalid("slides must be a PDF", field="slides_upload_id")
        number = (
            await s.scalar(
                select(func.max(CoursewareVersion.version)).where(CoursewareVersion.courseware_id == cw.id)
            )
            or 0
        ) + 1
        version = CoursewareVersion(
            courseware_id=cw.id,
            version=number,
            media_kind="pdf" if _is_pdf(upload) else "video",
            object_key=upload.object_key,
            size_bytes=upload.size_bytes,
            processing=Processing.PROCESSING.value,
            review_state=ReviewState.DRAFT.value,
            slides_object_key=slides.object_key if slides is not None else None,
            created_at=now,
        )
        s.add(version)
        await s.flush()
        upload.version_id = version.id
        if slides is not None:
            slides.version_id = version.id
        cw.updated_at = now
        [view] = await views.load(s, [cw])
    log.info("courseware version added courseware=%s version=%s id=%s", cw.id, number, version.id)
    return view


async def submit(db: Database, caller: Caller, version_id: int, now: datetime) -> dict[str, Any]:
    """The owner submits a draft version whose processing is ready for the association's review."""
    async with db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id, with_for_update=True)
        if version is None:
            raise NotFound(f"courseware version {version_id} not found", field="version_id")
        cw = await owned(s, caller, version.courseware_id, lock=True)
        others = (
            await s.execute(
                select(CoursewareVersion.version, CoursewareVersion.review_state).where(
                    CoursewareVersion.courseware_id == cw.id, CoursewareVersion.id != version.id
                )
            )
        ).all()
        check_submittable(
            ReviewState(version.review_state),
            Processing(version.processing),
            version.media_kind,
            version.version,
            [(n, ReviewState(st)) for n, st in others],
        )
        version.review_state = ReviewState.SUBMITTED.value
        version.submitted_at = now
        cw.updated_at = now
        audit.record(
            s,
            actor=caller.person_id,
            action="courseware.submitted",
            subject_type="courseware_version",
            subject_id=version.id,
            detail={"courseware_id": cw.id, "version": version.version},
            at=now,
        )
        [view] = await views.load(s, [cw])
    log.info("courseware version submitted version=%s person=%s", version_id, caller.person_id)
    return view
