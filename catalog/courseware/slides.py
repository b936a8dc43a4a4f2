"""Who may read a courseware version's slides (PDF), as a short-lived signed URL of the object store: the
owner and the association's reviewers always; anyone else only while the version is the approved one,
and only if they may watch its course's replay (catalog.replays.watcher_role: enrolled learners, the
provider's staff, supervisors). An unapproved version's PDF is as closed as its video."""

from __future__ import annotations

from catalog import queries, replays
from catalog.courseware.authoring import is_reviewer
from catalog.courseware.rules import ReviewState
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import Courseware, CoursewareVersion
from infra.errors import Forbidden, NotFound

URL_TTL_S = 600


async def slides_key(db: Database, caller: Caller, version_id: int) -> str:
    """The object key of the version's slides (its own PDF for a PDF version) if the caller may read them:
    NotFound for no such version or no slides, Forbidden for anyone the rule above refuses."""
    async with db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id)
        cw = await s.get(Courseware, version.courseware_id) if version is not None else None
        if version is None or cw is None:
            raise NotFound(f"courseware version {version_id} not found", field="version_id")
        key = version.object_key if version.media_kind == "pdf" else version.slides_object_key
        if key is None:
            raise NotFound("this version has no slides", field="version_id")
        if cw.owner_person_id == caller.person_id or is_reviewer(caller):
            return key
        if version.review_state != ReviewState.APPROVED or version.session_id is None:
            raise Forbidden("these slides are not approved for learners")
        session = await queries.session_or_404(s, version.session_id)
        if await replays.watcher_role(s, caller, session.course, replays.experts_of(session)) is None:
            raise Forbidden("enroll in the course to read its slides")
    return key
