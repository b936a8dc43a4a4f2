"""Every /api route × every kind of caller: the status each gets is declared here, in one matrix.

A route that is registered but missing from MATRIX fails the completeness test, so new routes must
declare who may call them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from catalog.credit.policy import CreditPolicy
from catalog.domain import CourseStatus, Role
from catalog.models import (
    ExternalImportBatch,
    ExternalRecordRow,
    Mentorship,
    OfflineAttendance,
    Session,
    SessionExpert,
    TrainingPlan,
    TrainingPlanItem,
    TrainingPlanTarget,
)
from catalog.offline import rules as offline_rules
from catalog.playback import Grant, check_id, check_nonce, login_binding, sign_grant
from tests.integration.catalog.conftest import SECRET
from tests.integration.catalog.courseware_authz import courseware_cases
from tests.integration.catalog.upload_authz import upload_cases

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

ROLES = (
    "anonymous",
    "learner",
    "expert",
    "provider_admin",
    "other_provider_admin",
    "employer_admin",
    "reviewer",
    "bureau",
    "admin",
)

Build = Callable[["World", str], Awaitable[tuple[str, dict[str, Any] | None]]]


@dataclass(frozen=True)
class Case:
    build: Build
    default: int
    overrides: dict[str, int]

    def expected(self, role: str) -> int:
        return self.overrides.get(role, self.default)


def case(default: int, build: Build, **overrides: int) -> Case:
    return Case(build, default, overrides)


def fixed(path: str, body: dict[str, Any] | None = None) -> Build:
    async def build(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
        return path.format(
            c=w.course_id, s=w.session_id, o=w.orgs.get("employer", 0), p=w.orgs.get("provider", 0)
        ), body

    return build


async def _register(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return "/api/auth/register", {"phone": w.next_phone(), "password": "long enough password", "name": "新人"}


async def _login(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    actor = w.actors["learner" if role == "anonymous" else role]
    return "/api/auth/login", {"phone": actor.phone, "password": "correct horse battery"}


async def _create_org(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    return "/api/organizations", {"type": "employer", "name": f"新单位-{role}"}


async def _grant(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    person = await w.person(f"grantee-{role}", [])
    return f"/api/organizations/{w.orgs['employer']}/roles", {"person_id": person.person_id, "role": "expert"}


async def _create_course(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return "/api/courses", {
        "provider_id": w.orgs["provider"],
        "title": "新课程",
        "category": "public",
        "credit_hours": 1.5,
        "delivery": "live",
    }


async def _publish(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    course = await w.course(w.orgs["provider"], status=CourseStatus.DRAFT)
    return f"/api/courses/{course}/publish", None


async def _archive(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    course = await w.course(w.orgs["provider"])
    return f"/api/courses/{course}/archive", None


def _session_body() -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=3)
    return {
        "title": "第二讲",
        "kind": "live",
        "scheduled_start": start.isoformat(),
        "scheduled_end": (start + timedelta(hours=1)).isoformat(),
    }


async def _add_session(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    # A live session of a published course names its expert (catalog.publishing).
    body = {**_session_body(), "expert_ids": [w.actors["expert"].person_id]}
    return f"/api/courses/{w.course_id}/sessions", body


async def _experts(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/sessions/{w.session_id}/experts", {"person_ids": [w.actors["expert"].person_id]}


async def _staff_enrollment(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    staff = await w.person(f"staff-{role}", [(Role.LEARNER, w.orgs["employer"])], employer=w.orgs["employer"])
    return f"/api/employers/{w.orgs['employer']}/enrollments", {
        "course_id": w.course_id,
        "person_ids": [staff.person_id],
    }


async def _replay(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/replays/{await w.recording(w.session_id)}", None


async def _replay_playback(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/replays/{await w.recording(w.session_id)}/playback", None


def _learners_grant(w: World) -> tuple[str, str]:
    """A playback the learner's login opened (client id, token), signed as POST .../playback signs it."""
    client_id = uuid.uuid4().hex
    learner = w.actors["learner"].headers
    binding = login_binding(
        SECRET, learner["Cookie"].removeprefix("lectern_session="), learner["X-CSRF-Token"]
    )
    grant = Grant(
        client_id,
        w.actors["learner"].person_id,
        "rec-x",
        120.0,
        ("camera",),
        "seed",
        3,
        60,
        30,
        binding,
        time.time() + 3600,
    )
    return client_id, sign_grant(SECRET, grant)


async def _playback_heartbeat(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    client_id, token = _learners_grant(w)
    body = {"token": token, "seq": 0, "position_s": 1.0, "rate": 1.0, "visible": True, "angle": "camera"}
    return f"/api/playback/{client_id}/heartbeats", body


async def _check_answer(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    client_id, token = _learners_grant(w)
    check = check_id(client_id, 0)
    return f"/api/playback/{client_id}/checks/{check}", {
        "token": token,
        "nonce": check_nonce(SECRET, client_id, check),
    }


async def _time_correction(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    # A session that ran two hours ago: its corrected times lie within a day of its schedule, in the past.
    start = datetime.now(UTC) - timedelta(hours=3)
    session = await w.session(w.course_id, start=start, experts=(w.actors["expert"].person_id,))
    body = {
        "actual_start": start.isoformat(),
        "actual_end": (start + timedelta(hours=1)).isoformat(),
        "reason": "讲师网络故障，实际推迟开始",
    }
    return f"/api/sessions/{session}/time-corrections", body


async def _flag(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    from catalog.models import FraudFlag

    async with w.db.sessions.begin() as s:
        flag = FraudFlag(
            person_id=w.actors["learner"].person_id,
            session_id=w.session_id,
            course_id=w.course_id,
            code="auto_confirm",
            subject=f"session:{w.session_id}:{role}",
            severity="warning",
            evidence={"latency_ms": 120},
            status="open",
            created_at=datetime.now(UTC),
        )
        s.add(flag)
        await s.flush()
        flag_id = flag.id
    return f"/api/fraud-flags/{flag_id}/resolve", {"status": "dismissed", "resolution": "核实为正常操作"}


async def _staff_entry(w: World, status: str) -> int:
    """A ledger entry of the employer's second employee (not the seeded learner) in `status`."""
    from decimal import Decimal

    from catalog.models import CreditEntry

    async with w.db.sessions.begin() as s:
        entry = CreditEntry(
            person_id=w.actors["staff"].person_id, course_id=w.course_id, session_id=w.session_id,
            credit_year=2026, credit_day="2026-03-02", category="professional", kind="live", minutes=90.0,
            xueshi=Decimal("2.0"), policy_version=0, computed_at=datetime.now(UTC) - timedelta(hours=1),
            status=status, evidence={},
        )  # fmt: skip
        s.add(entry)
        await s.flush()
        return entry.id


async def _decision(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    entry_id = await _staff_entry(w, "pending")
    return "/api/credit-entries/decisions", {"entry_ids": [entry_id], "action": "approve"}


async def _revoke(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/credit-entries/{await _staff_entry(w, 'registered')}/revoke", {"reason": "证据不实"}


async def _override(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/credit-entries/{await _staff_entry(w, 'rejected')}/override", {"reason": "复核属实"}


async def _entry_decisions(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    return f"/api/credit-entries/{await _staff_entry(w, 'pending')}/decisions", None


async def _external_session(w: World, _role: str) -> int:
    start = datetime.now(UTC) + timedelta(days=2)
    async with w.db.sessions.begin() as s:
        ss = Session(
            course_id=w.course_id,
            title="腾讯会议讲座",
            kind="external",
            scheduled_start=start,
            scheduled_end=start + timedelta(hours=2),
            external_platform="tencent",
            external_ids={},
        )
        s.add(ss)
        await s.flush()
        return ss.id


async def _link(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    session = await _external_session(w, role)
    return f"/api/sessions/{session}/external", {"platform": "tencent", "meeting_code": "445999969"}


async def _pull(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    # Linked, but the organization has no credentials: the provider's administrators get 409.
    session = await _external_session(w, role)
    return f"/api/sessions/{session}/external/pull", None


async def _record(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    """An imported record waiting for review, matched to the enrolled learner."""
    now = datetime.now(UTC)
    async with w.db.sessions.begin() as s:
        batch = ExternalImportBatch(
            session_id=w.session_id, platform="tencent", source="file", fetched_at=now,
            payload_hash=f"h-{role}", status="done", counts={}, report={}, error="",
        )  # fmt: skip
        s.add(batch)
        await s.flush()
        record = ExternalRecordRow(
            batch_id=batch.id, session_id=w.session_id, platform="tencent", row_key=f"k-{role}",
            external_meeting_ref="m", display_name="昵称", join_at=now, is_pstn=False, trust="high",
            match="unmatched", row_ref="row 2", created_at=now, updated_at=now,
        )  # fmt: skip
        s.add(record)
        await s.flush()
        return f"/api/external-records/{record.id}/match", {"person_id": w.actors["learner"].person_id}


async def _my_account(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    return "/api/me/external-accounts/tencent", {"external_user_id": f"user-{role}"}


async def _offline_session(w: World, _role: str) -> int:
    """An offline session of the seeded course, running now, taught by the seeded expert."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    async with w.db.sessions.begin() as s:
        ss = Session(
            course_id=w.course_id, title="现场培训", kind="offline", scheduled_start=start,
            scheduled_end=start + timedelta(hours=2), external_platform="none", external_ids={},
            location="青岛市市南区培训教室",
        )  # fmt: skip
        s.add(ss)
        await s.flush()
        s.add(SessionExpert(session_id=ss.id, person_id=w.actors["expert"].person_id))
        return ss.id


def _offline(path: str) -> Build:
    async def build(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
        return path.format(s=await _offline_session(w, role)), None

    return build


# --- the programme: mentorship and training plans (issue 15) ---------------------------------------------


async def _mentorship(w: World, *, mentor: int, mentee: int, proposed_by: int, **state: Any) -> int:
    """An agreement stored as it would stand, for last year (its period over)."""
    year = datetime.now(UTC).year - 1
    async with w.db.sessions.begin() as s:
        m = Mentorship(
            mentor_person_id=mentor, mentee_person_id=mentee, year=year, plan="计划", terms="协议",
            start_date=date(year, 3, 1), end_date=date(year, 11, 30), status=state.pop("status", "proposed"),
            proposed_by=proposed_by, proposed_at=datetime.now(UTC), **state,
        )  # fmt: skip
        s.add(m)
        await s.flush()
        return m.id


async def _fresh_mentee(w: World, role: str) -> int:
    employer = w.orgs["employer"]
    return (await w.person(f"mentee-{role}", [(Role.LEARNER, employer)], employer=employer)).person_id


async def _propose(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    year = datetime.now(UTC).year
    if role == "expert":
        side, other, name = "mentor", await _fresh_mentee(w, role), f"测试mentee-{role}"
    else:
        side, other, name = "mentee", w.actors["expert"].person_id, "测试expert"
    return "/api/mentorships", {
        "side": side, "counterpart_id": other, "counterpart_name": name, "year": year + 1, "plan": "计划",
        "terms": "协议", "start_date": f"{year + 1}-01-01", "end_date": f"{year + 1}-12-31",
    }  # fmt: skip


async def _mentorship_path(w: World, role: str, action: str = "") -> str:
    """Proposed by a fresh mentee to the seeded expert (whose move it is)."""
    mentee = await _fresh_mentee(w, role)
    expert = w.actors["expert"].person_id
    m = await _mentorship(w, mentor=expert, mentee=mentee, proposed_by=mentee)
    return f"/api/mentorships/{m}{action}"


async def _see_mentorship(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    return await _mentorship_path(w, role), None


async def _confirm_mentorship(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    return await _mentorship_path(w, role, "/confirm"), None


async def _cancel_mentorship(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    return await _mentorship_path(w, role, "/cancel"), None


async def _record_completion(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    mentee = await _fresh_mentee(w, role)
    expert = w.actors["expert"].person_id
    now = datetime.now(UTC)
    m = await _mentorship(
        w, mentor=expert, mentee=mentee, proposed_by=expert, status="confirmed", mentor_confirmed_at=now,
        mentee_confirmed_at=now,
    )  # fmt: skip
    return f"/api/mentorships/{m}/completion", {"summary": "完成"}


async def _confirm_completion(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    """The seeded learner is the mentee, of a fresh mentor who recorded completion."""
    mentor = (await w.person(f"mentor-{role}", [(Role.EXPERT, None)])).person_id
    now = datetime.now(UTC)
    m = await _mentorship(
        w, mentor=mentor, mentee=w.actors["learner"].person_id, proposed_by=mentor, status="confirmed",
        mentor_confirmed_at=now, mentee_confirmed_at=now, completion_summary="完成", completed_at=now,
    )  # fmt: skip
    return f"/api/mentorships/{m}/completion/confirm", None


async def _plan(w: World, *, published: bool = False) -> tuple[int, int]:
    """A plan of the seeded employer (a year of its own, so that each call makes a new one) with one item
    targeting the seeded learner: (plan id, item id)."""
    now = datetime.now(UTC)
    async with w.db.sessions.begin() as s:
        n = await s.scalar(select(func.count()).select_from(TrainingPlan)) or 0
        plan = TrainingPlan(
            employer_org_id=w.orgs["employer"], year=2000 + n, title="年度计划",
            status="published" if published else "draft", created_by=w.actors["employer_admin"].person_id,
            created_at=now, published_at=now if published else None,
        )  # fmt: skip
        s.add(plan)
        await s.flush()
        item = TrainingPlanItem(
            plan_id=plan.id, course_id=w.course_id, target_xueshi=Decimal(2), note="", created_at=now
        )
        s.add(item)
        await s.flush()
        s.add(TrainingPlanTarget(item_id=item.id, person_id=w.actors["learner"].person_id))
        return plan.id, item.id


def _plan_route(sub: str = "", body: dict[str, Any] | None = None, *, published: bool = False) -> Build:
    async def build(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
        plan, item = await _plan(w, published=published)
        return f"/api/plans/{plan}{sub.format(item=item)}", body

    return build


async def _checkin(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    # The venue's current code: the enrolled learner signs in, everyone else is not enrolled.
    session = await _offline_session(w, role)
    code = offline_rules.issue(SECRET, session, datetime.now(UTC), CreditPolicy()).text
    return f"/api/sessions/{session}/checkin", {"action": "sign_in", "code": code}


async def _offline_correction(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    session = await _offline_session(w, role)
    now = datetime.now(UTC)
    async with w.db.sessions.begin() as s:
        row = OfflineAttendance(
            session_id=session, person_id=w.actors["learner"].person_id,
            signed_in_at=now - timedelta(minutes=9), signed_out_at=now - timedelta(minutes=8),
            in_code_slot=0, out_code_slot=30, created_at=now, updated_at=now,
        )  # fmt: skip
        s.add(row)
        await s.flush()
    body = {"signed_out_at": (now - timedelta(minutes=1)).isoformat(), "reason": "核对签到表后更正"}
    return f"/api/offline-attendance/{row.id}/corrections", body


async def _new_plan(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    year = datetime.now(UTC).year + (1 if role == "admin" else 0)  # one plan per employer and year
    return f"/api/employers/{w.orgs['employer']}/plans", {"year": year, "title": "年度计划"}


async def _plan_item(w: World, _role: str) -> tuple[str, dict[str, Any] | None]:
    plan, _item = await _plan(w)
    return f"/api/plans/{plan}/items", {
        "category": "public",
        "person_ids": [w.actors["learner"].person_id],
        "target_xueshi": 2,
    }


PLAN_MANAGERS = {"employer_admin": 200, "admin": 200, "bureau": 403}
PLAN_READERS = {"employer_admin": 200, "admin": 200, "bureau": 200}


async def _certificate(w: World, _role: str) -> tuple[str, str]:
    """A course certificate of the seeded learner, issued by the course's provider: (serial, code)."""
    from decimal import Decimal

    from catalog.certificates import rules
    from catalog.models import Certificate

    serial, code = rules.new_serial(2026), rules.new_code()
    async with w.db.sessions.begin() as s:
        s.add(
            Certificate(
                serial=serial, verify_code=code, person_id=w.actors["learner"].person_id,
                person_name="测试学员", scope="course", year=2026, course_id=w.course_id,
                course_title="建筑工程新技术", total_xueshi=Decimal(2), public_xueshi=Decimal(0),
                professional_xueshi=Decimal(2), entry_ids=[], issuer_org_id=w.orgs["provider"],
                issuer_name="青岛继续教育基地", issued_at=datetime.now(UTC),
            )
        )  # fmt: skip
    return serial, code


async def _certificate_pdf(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    serial, _ = await _certificate(w, role)
    return f"/api/certificates/{serial}.pdf", None


async def _verify_certificate(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    serial, code = await _certificate(w, role)
    return f"/api/certificates/verify?serial={serial}&code={code}", None


async def _revoke_certificate(w: World, role: str) -> tuple[str, dict[str, Any] | None]:
    serial, _ = await _certificate(w, role)
    return f"/api/certificates/{serial}/revoke", {"reason": "证书信息有误"}


TENCENT_KEYS = {"app_id": "200000001", "secret_id": "AKIDx", "secret_key": "sk", "userid": "host"}

MANAGERS = {"provider_admin": 200, "admin": 200}

MATRIX: dict[str, Case] = {
    "POST /api/auth/register": case(202, _register),
    "POST /api/auth/login": case(200, _login),
    "POST /api/auth/logout": case(204, fixed("/api/auth/logout"), anonymous=401),
    "GET /api/me": case(200, fixed("/api/me"), anonymous=401),
    "GET /api/me/learning": case(200, fixed("/api/me/learning"), anonymous=401),
    "GET /api/me/teaching": case(200, fixed("/api/me/teaching"), anonymous=401),
    "GET /api/organizations": case(200, fixed("/api/organizations")),
    "GET /api/experts": case(
        403,
        fixed("/api/experts"),
        anonymous=401,
        provider_admin=200,
        other_provider_admin=200,
        bureau=200,
        admin=200,
    ),
    "POST /api/organizations": case(403, _create_org, anonymous=401, bureau=201, admin=201),
    "GET /api/organizations/{org_id}": case(200, fixed("/api/organizations/{o}")),
    "POST /api/organizations/{org_id}/roles": case(403, _grant, anonymous=401, admin=201),
    "GET /api/courses": case(200, fixed("/api/courses")),
    "POST /api/courses": case(403, _create_course, anonymous=401, provider_admin=201, admin=201),
    "GET /api/courses/{course_id}": case(200, fixed("/api/courses/{c}")),
    "PATCH /api/courses/{course_id}": case(
        403, fixed("/api/courses/{c}", {"title": "改名"}), anonymous=401, **MANAGERS
    ),
    # A draft is invisible (404) to all but its provider's admins and the supervisors.
    "POST /api/courses/{course_id}/publish": case(404, _publish, anonymous=401, bureau=403, **MANAGERS),
    "POST /api/courses/{course_id}/archive": case(403, _archive, anonymous=401, **MANAGERS),
    "POST /api/courses/{course_id}/sessions": case(
        403, _add_session, anonymous=401, provider_admin=201, admin=201
    ),
    "GET /api/sessions/{session_id}": case(200, fixed("/api/sessions/{s}")),
    "PATCH /api/sessions/{session_id}": case(
        403, fixed("/api/sessions/{s}", {"title": "改"}), anonymous=401, **MANAGERS
    ),
    "PUT /api/sessions/{session_id}/experts": case(403, _experts, anonymous=401, **MANAGERS),
    "POST /api/sessions/{session_id}/media-token": case(
        403,
        fixed("/api/sessions/{s}/media-token", {"purpose": "whep"}),
        anonymous=401,
        learner=201,
        expert=201,
        provider_admin=201,
    ),
    # The /hls/{session}/ media cookie: for those who may watch (experts, the provider's staff, enrolled
    # learners, supervisors), as the replay rule says.
    "POST /api/sessions/{session_id}/hls-access": case(
        403,
        fixed("/api/sessions/{s}/hls-access"),
        anonymous=401,
        learner=200,
        expert=200,
        provider_admin=200,
        bureau=200,
        admin=200,
    ),
    # Anyone logged in may ask what they may do in a room (the answer says no to most).
    "GET /api/sessions/{session_id}/access": case(200, fixed("/api/sessions/{s}/access"), anonymous=401),
    # The seeded learner is already enrolled: enrolling again is a no-op (200).
    "POST /api/courses/{course_id}/enroll": case(
        403, fixed("/api/courses/{c}/enroll"), anonymous=401, learner=200
    ),
    "POST /api/courses/{course_id}/withdraw": case(
        409, fixed("/api/courses/{c}/withdraw"), anonymous=401, learner=200
    ),
    "POST /api/employers/{org_id}/enrollments": case(
        403, _staff_enrollment, anonymous=401, employer_admin=201, admin=201
    ),
    "GET /api/courses/{course_id}/enrollments": case(
        403, fixed("/api/courses/{c}/enrollments"), anonymous=401, provider_admin=200, bureau=200, admin=200
    ),
    # Attendance: the provider's administrators and platform admins only.
    "GET /api/courses/{course_id}/attendance": case(
        403, fixed("/api/courses/{c}/attendance"), anonymous=401, **MANAGERS
    ),
    "GET /api/sessions/{session_id}/attendance": case(
        403, fixed("/api/sessions/{s}/attendance"), anonymous=401, **MANAGERS
    ),
    # Replays: enrolled learners, the provider's staff, the session's experts and supervisors.
    "GET /api/replays/{recording_id}": case(
        403, _replay, anonymous=401, learner=200, expert=200, provider_admin=200, bureau=200, admin=200
    ),
    "POST /api/replays/{recording_id}/playback": case(
        403,
        _replay_playback,
        anonymous=401,
        learner=201,
        expert=201,
        provider_admin=201,
        bureau=201,
        admin=201,
    ),
    # Playback heartbeats and check answers: only the login that opened the playback, with its token
    # (an answer to a check never issued is 409 check_not_issued).
    "POST /api/playback/{client_id}/heartbeats": case(403, _playback_heartbeat, anonymous=401, learner=200),
    "POST /api/playback/{client_id}/checks/{check_id}": case(403, _check_answer, anonymous=401, learner=409),
    # Credit: the policy is read by everyone logged in, its history by supervisors, changed by admins.
    "GET /api/credit-policy": case(200, fixed("/api/credit-policy"), anonymous=401),
    "GET /api/credit-policy/versions": case(
        403, fixed("/api/credit-policy/versions"), anonymous=401, bureau=200, admin=200
    ),
    "POST /api/credit-policy": case(
        403, fixed("/api/credit-policy", {"note": "测试", "heartbeat_period_s": 2}), anonymous=401, admin=201
    ),
    "GET /api/me/credits": case(200, fixed("/api/me/credits"), anonymous=401),
    "GET /api/sessions/{session_id}/credits": case(
        403, fixed("/api/sessions/{s}/credits"), anonymous=401, bureau=200, **MANAGERS
    ),
    "GET /api/sessions/{session_id}/attendance.csv": case(
        403, fixed("/api/sessions/{s}/attendance.csv"), anonymous=401, bureau=200, **MANAGERS
    ),
    "GET /api/sessions/{session_id}/attendance.xlsx": case(
        403, fixed("/api/sessions/{s}/attendance.xlsx"), anonymous=401, bureau=200, **MANAGERS
    ),
    # The employer's 学时台账: its administrators, the HR bureau and admins.
    "GET /api/employers/{org_id}/staff": case(
        403, fixed("/api/employers/{o}/staff"), anonymous=401, employer_admin=200, bureau=200, admin=200
    ),
    "GET /api/employers/{org_id}/study-record.xlsx": case(
        403,
        fixed("/api/employers/{o}/study-record.xlsx"),
        anonymous=401,
        employer_admin=200,
        bureau=200,
        admin=200,
    ),
    "GET /api/employers/{org_id}/study-record.csv": case(
        403,
        fixed("/api/employers/{o}/study-record.csv"),
        anonymous=401,
        employer_admin=200,
        bureau=200,
        admin=200,
    ),
    "POST /api/sessions/{session_id}/time-corrections": case(
        403, _time_correction, anonymous=401, provider_admin=201, admin=201
    ),
    "GET /api/sessions/{session_id}/time-corrections": case(
        403, fixed("/api/sessions/{s}/time-corrections"), anonymous=401, bureau=200, **MANAGERS
    ),
    # The review list: provider admins see their courses' flags (another provider's list is empty, not
    # refused); a flag on someone else's course is not found; the bureau reads but does not resolve.
    "GET /api/fraud-flags": case(
        403, fixed("/api/fraud-flags"), anonymous=401, other_provider_admin=200, bureau=200, **MANAGERS
    ),
    "POST /api/fraud-flags/{flag_id}/resolve": case(404, _flag, anonymous=401, bureau=403, **MANAGERS),
    # Employer approval: the staff's employer decides (the HR bureau only for learners without one and
    # employer administrators' own entries); the bureau and admins revoke and override; an entry of
    # someone else's staff is not found; the audit log is the HR bureau's and admins' to read.
    "GET /api/employers/{org_id}/credit-entries": case(
        403,
        fixed("/api/employers/{o}/credit-entries"),
        anonymous=401,
        employer_admin=200,
        bureau=200,
        admin=200,
    ),
    "GET /api/credit-entries/unaffiliated": case(
        403, fixed("/api/credit-entries/unaffiliated"), anonymous=401, bureau=200, admin=200
    ),
    "GET /api/credit-entries/employer-admins": case(
        403, fixed("/api/credit-entries/employer-admins"), anonymous=401, bureau=200, admin=200
    ),
    "POST /api/credit-entries/decisions": case(403, _decision, anonymous=401, employer_admin=200),
    "POST /api/credit-entries/{entry_id}/revoke": case(
        403, _revoke, anonymous=401, employer_admin=200, bureau=200, admin=200
    ),
    "POST /api/credit-entries/{entry_id}/override": case(
        403, _override, anonymous=401, bureau=200, admin=200
    ),
    "GET /api/credit-entries/{entry_id}/decisions": case(
        404, _entry_decisions, anonymous=401, employer_admin=200, bureau=200, admin=200
    ),
    "GET /api/audit-log": case(403, fixed("/api/audit-log"), anonymous=401, bureau=200, admin=200),
    # Certificates: one's own are listed and issued by oneself (nothing registered here: 409); the PDF
    # is its holder's, their employer's and the supervisors' (others: not found); anyone verifies; the
    # bureau, admins and the issuing provider revoke, never the holder (who may read it: 403).
    "GET /api/me/certificates": case(200, fixed("/api/me/certificates"), anonymous=401),
    "POST /api/me/certificates": case(
        409, fixed("/api/me/certificates", {"scope": "annual", "year": 2026}), anonymous=401
    ),
    "GET /api/certificates/{serial}.pdf": case(
        404, _certificate_pdf, anonymous=401, learner=200, employer_admin=200, bureau=200, admin=200
    ),
    "GET /api/certificates/verify": case(200, _verify_certificate),
    "POST /api/certificates/{serial}/revoke": case(
        404,
        _revoke_certificate,
        anonymous=401,
        learner=403,
        employer_admin=403,
        provider_admin=200,
        bureau=200,
        admin=200,
    ),
    # External meetings: the provider's administrators (and admins); the webhook is Tencent's, signed.
    "GET /api/organizations/{org_id}/integrations/{platform}": case(
        403, fixed("/api/organizations/{p}/integrations/tencent"), anonymous=401, **MANAGERS
    ),
    "PUT /api/organizations/{org_id}/integrations/{platform}": case(
        403, fixed("/api/organizations/{p}/integrations/tencent", TENCENT_KEYS), anonymous=401, **MANAGERS
    ),
    "GET /api/sessions/{session_id}/external": case(
        403, fixed("/api/sessions/{s}/external"), anonymous=401, **MANAGERS
    ),
    "PUT /api/sessions/{session_id}/external": case(403, _link, anonymous=401, **MANAGERS),
    "POST /api/sessions/{session_id}/external/pull": case(
        403, _pull, anonymous=401, provider_admin=409, admin=409
    ),
    "GET /api/integrations/tencent/webhook/{org_id}": case(
        400, fixed("/api/integrations/tencent/webhook/{p}?check_str=YWJj")
    ),
    "POST /api/integrations/tencent/webhook/{org_id}": case(
        400, fixed("/api/integrations/tencent/webhook/{p}", {"data": "YWJj"})
    ),
    # A JSON body is not a file: the managers get 400 once their access is checked.
    "POST /api/sessions/{session_id}/external/import": case(
        403, fixed("/api/sessions/{s}/external/import"), anonymous=401, provider_admin=400, admin=400
    ),
    "GET /api/sessions/{session_id}/external/review": case(
        403, fixed("/api/sessions/{s}/external/review"), anonymous=401, **MANAGERS
    ),
    "POST /api/external-records/{record_id}/match": case(403, _record, anonymous=401, **MANAGERS),
    "GET /api/me/external-accounts": case(200, fixed("/api/me/external-accounts"), anonymous=401),
    "PUT /api/me/external-accounts/{platform}": case(200, _my_account, anonymous=401),
    # Mentorship: experts propose as mentors, learners as mentees; only the agreement's two people act on
    # it (anyone else: 404); the mentee's employer and supervisors read it.
    "GET /api/me/mentorships": case(200, fixed("/api/me/mentorships"), anonymous=401),
    "POST /api/mentorships": case(403, _propose, anonymous=401, learner=201, expert=201),
    "GET /api/mentorships/{mentorship_id}": case(
        404, _see_mentorship, anonymous=401, expert=200, employer_admin=200, bureau=200, admin=200
    ),
    "POST /api/mentorships/{mentorship_id}/confirm": case(
        404, _confirm_mentorship, anonymous=401, expert=200
    ),
    "POST /api/mentorships/{mentorship_id}/cancel": case(404, _cancel_mentorship, anonymous=401, expert=200),
    "POST /api/mentorships/{mentorship_id}/completion": case(
        404, _record_completion, anonymous=401, expert=200
    ),
    "POST /api/mentorships/{mentorship_id}/completion/confirm": case(
        404, _confirm_completion, anonymous=401, learner=200
    ),
    # Training plans: the employer's administrators (and admins) manage, the bureau reads; anyone else does
    # not see a plan (404) and may not list or create an employer's plans (403).
    "GET /api/employers/{org_id}/plans": case(
        403, fixed("/api/employers/{o}/plans"), anonymous=401, **PLAN_READERS
    ),
    "POST /api/employers/{org_id}/plans": case(403, _new_plan, anonymous=401, employer_admin=201, admin=201),
    "GET /api/plans/{plan_id}": case(404, _plan_route(), anonymous=401, **PLAN_READERS),
    "PATCH /api/plans/{plan_id}": case(
        404, _plan_route("", {"title": "改名"}), anonymous=401, **PLAN_MANAGERS
    ),
    "POST /api/plans/{plan_id}/publish": case(404, _plan_route("/publish"), anonymous=401, **PLAN_MANAGERS),
    "POST /api/plans/{plan_id}/items": case(
        404, _plan_item, anonymous=401, employer_admin=201, admin=201, bureau=403
    ),
    "PATCH /api/plans/{plan_id}/items/{item_id}": case(
        404, _plan_route("/items/{item}", {"target_xueshi": 3}), anonymous=401, **PLAN_MANAGERS
    ),
    "DELETE /api/plans/{plan_id}/items/{item_id}": case(
        404, _plan_route("/items/{item}"), anonymous=401, **PLAN_MANAGERS
    ),
    "POST /api/plans/{plan_id}/enroll": case(
        404, _plan_route("/enroll", published=True), anonymous=401, **PLAN_MANAGERS
    ),
    "GET /api/plans/{plan_id}/progress": case(404, _plan_route("/progress"), anonymous=401, **PLAN_READERS),
    "GET /api/plans/{plan_id}/staff": case(404, _plan_route("/staff"), anonymous=401, **PLAN_READERS),
    # Supervision (监管): the HR bureau and admins (the seeded bureau is an hrss_bureau: all providers);
    # everyone else supervises nobody. Sectors are set by admins only.
    "GET /api/supervision/providers": case(
        403, fixed("/api/supervision/providers"), anonymous=401, bureau=200, admin=200
    ),
    "GET /api/supervision/providers/{org_id}/sessions": case(
        403, fixed("/api/supervision/providers/{p}/sessions"), anonymous=401, bureau=200, admin=200
    ),
    "GET /api/supervision/sessions/{session_id}/entries": case(
        403, fixed("/api/supervision/sessions/{s}/entries"), anonymous=401, bureau=200, admin=200
    ),
    "GET /api/supervision/export.xlsx": case(
        403, fixed("/api/supervision/export.xlsx"), anonymous=401, bureau=200, admin=200
    ),
    "GET /api/supervision/export.csv": case(
        403, fixed("/api/supervision/export.csv"), anonymous=401, bureau=200, admin=200
    ),
    "POST /api/supervision/refresh": case(
        403, fixed("/api/supervision/refresh", {}), anonymous=401, bureau=200, admin=200
    ),
    "PUT /api/organizations/{org_id}/sector": case(
        403, fixed("/api/organizations/{p}/sector", {"sector": "建筑"}), anonymous=401, admin=200
    ),
    "GET /api/openapi.json": case(200, fixed("/api/openapi.json")),
    # Offline training: the venue's code for its staff (the provider's administrators, the session's
    # experts); sign-in for enrolled learners; corrections by the provider's administrators.
    "GET /api/sessions/{session_id}/venue/code": case(
        403, _offline("/api/sessions/{s}/venue/code"), anonymous=401, expert=200, **MANAGERS
    ),
    "GET /api/sessions/{session_id}/offline-attendance": case(
        403,
        _offline("/api/sessions/{s}/offline-attendance"),
        anonymous=401,
        expert=200,
        bureau=200,
        **MANAGERS,
    ),
    "GET /api/sessions/{session_id}/checkin": case(200, _offline("/api/sessions/{s}/checkin"), anonymous=401),
    "POST /api/sessions/{session_id}/checkin": case(403, _checkin, anonymous=401, learner=201),
    "POST /api/offline-attendance/{attendance_id}/corrections": case(
        403, _offline_correction, anonymous=401, **MANAGERS
    ),
}
MATRIX.update(courseware_cases(case))
MATRIX.update(upload_cases(case))

ANONYMOUS_WRITES_ALLOWED = {
    "POST /api/auth/register",
    "POST /api/auth/login",
    "POST /api/integrations/tencent/webhook/{org_id}",  # signed by Tencent, no session
}


@pytest.fixture(params=["postgres"])
def engine_template(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """Who may call what is decided in Python, the same on both engines: the matrix runs on PostgreSQL
    only (the engine of deployments), which halves its share of the suite. The routes' SQL runs on SQLite
    in their feature tests (the catalog's fixtures give most of tests/integration/catalog both engines)."""
    return "postgres", request.getfixturevalue("postgres_template")


def registered_api_routes(app: web.Application) -> set[str]:
    keys = set()
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if canonical.startswith("/api/") and route.method != "HEAD":
            keys.add(f"{route.method} {canonical}")
    return keys


async def test_every_registered_api_route_is_in_the_matrix(
    client: TestClient[web.Request, web.Application],
) -> None:
    registered = registered_api_routes(client.app)
    assert registered - MATRIX.keys() == set(), "routes missing from MATRIX"
    assert MATRIX.keys() - registered == set(), "MATRIX names routes that are not registered"


def test_anonymous_writes_are_refused_with_401() -> None:
    for key, spec in MATRIX.items():
        if not key.startswith("GET ") and key not in ANONYMOUS_WRITES_ALLOWED:
            assert spec.expected("anonymous") == 401, key


@pytest.mark.parametrize("route", sorted(MATRIX))
async def test_route_answers_each_role_as_the_matrix_says(
    route: str,
    client: TestClient[web.Request, web.Application],
    world: World,
) -> None:
    method = route.split(" ", 1)[0]
    spec = MATRIX[route]
    got: dict[str, int] = {}
    for role in ROLES:
        path, body = await spec.build(world, role)
        headers = {} if role == "anonymous" else dict(world.actors[role].headers)
        client.session.cookie_jar.clear()
        resp = await client.request(method, path, json=body, headers=headers)
        got[role] = resp.status
        assert resp.status < 500, await resp.text()
        if resp.status >= 400:
            error = (await resp.json())["error"]
            assert error["code"]
            assert error["message"]
    expected = {role: spec.expected(role) for role in ROLES}
    assert got == expected


@pytest.mark.parametrize(
    "route", sorted(k for k in MATRIX if not k.startswith("GET ") and k not in ANONYMOUS_WRITES_ALLOWED)
)
async def test_cookie_authenticated_write_without_csrf_header_is_forbidden(
    route: str,
    client: TestClient[web.Request, web.Application],
    world: World,
) -> None:
    method = route.split(" ", 1)[0]
    path, body = await MATRIX[route].build(world, "admin")
    headers = {"Cookie": world.actors["admin"].headers["Cookie"]}
    client.session.cookie_jar.clear()
    for csrf in (None, "wrong-token"):
        resp = await client.request(
            method, path, json=body, headers=headers if csrf is None else {**headers, "X-CSRF-Token": csrf}
        )
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["error"]["field"] == "X-CSRF-Token"
