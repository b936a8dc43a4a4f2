"""The catalog's JSON API under /api: thin handlers (parse, call one service, serialize) and ROUTES,
the route table from which both the router and the OpenAPI document are built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from catalog import (
    accounts,
    attendance,
    courses,
    enrollments,
    experts,
    external_api,
    external_imports,
    forms,
    media,
    orgs,
    playback_routes,
    replays,
    schemas,
    search,
    teaching,
)
from catalog import fields as f
from catalog.auth import (
    COOKIE,
    DEVICE_COOKIE,
    clear_session_cookie,
    client_address,
    current_person,
    database,
    now,
    optional_person,
    set_device_cookie,
    set_session_cookie,
    settings,
)
from catalog.certificates import routes as certificate_routes
from catalog.courseware import routes as courseware_routes
from catalog.courseware import upload_routes
from catalog.credit import approval_routes, employer_routes
from catalog.credit import handlers as credit
from catalog.domain import Caller
from catalog.keys import ON_WITHDRAWN
from catalog.mentorship import routes as mentorship_routes
from catalog.offline import routes as offline_routes
from catalog.plans import routes as plan_routes
from catalog.routing import CHECK, COURSE, FLAG, ORG, PLATFORM, PLAYBACK_CLIENT, RECORDING, SESSION, Route
from catalog.supervision import routes as supervision_routes
from infra import media_access
from infra.http import json_ok, read_json, read_upload

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _id(request: web.Request, name: str) -> int:
    # Route patterns are \d+, so this cannot fail; a too-large number is simply not found.
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


# --- accounts -------------------------------------------------------------------------------------------

REGISTERED = (
    "If this phone number had no account, it has one now, with this password: log in with it. "
    "If it had one already, nothing changed: log in with that account's password."
)


async def register(request: web.Request) -> web.Response:
    data = forms.registration(await read_json(request))
    await accounts.register(
        database(request),
        phone=data.phone,
        password=data.password,
        name=data.name,
        employer_org_id=data.employer_org_id,
        address=client_address(request),
        now=now(),
    )
    # The same answer whether the phone was free or taken: which accounts exist is nobody's business.
    return json_ok({"message": REGISTERED}, status=202)


async def login(request: web.Request) -> web.Response:
    data = forms.credentials(await read_json(request))
    result = await accounts.login(
        database(request),
        settings(request),
        phone=data.phone,
        password=data.password,
        address=client_address(request),
        device=request.cookies.get(DEVICE_COOKIE, ""),
        now=now(),
    )
    response = json_ok(
        {
            "person": result.person,
            "csrf_token": result.csrf_token,
            "expires_at": result.expires_at.isoformat(),
        }
    )
    set_session_cookie(response, request, result.token, settings(request).session_ttl_s)
    set_device_cookie(response, request, result.device, result.device_expires_at)
    return response


async def logout(request: web.Request) -> web.Response:
    await current_person(request)
    await accounts.logout(database(request), request.cookies[COOKIE])
    response = web.Response(status=204)
    clear_session_cookie(response)
    return response


async def get_me(request: web.Request) -> web.Response:
    caller = await current_person(request)
    me = await accounts.me(database(request), caller)
    # Repeated here so that a reloaded page can recover it; the cookie alone cannot be read by scripts.
    return json_ok({**me, "csrf_token": caller.csrf_token})


async def my_learning(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await enrollments.my_learning(database(request), caller, f.page(request.query), now()))


async def my_teaching(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await teaching.my_teaching(database(request), caller, now()))


# --- organizations --------------------------------------------------------------------------------------


async def list_orgs(request: web.Request) -> web.Response:
    kind = forms.org_type_filter(request.query)
    return json_ok(await orgs.list_orgs(database(request), kind, f.page(request.query)))


async def create_org(request: web.Request) -> web.Response:
    caller = await current_person(request)
    draft = forms.org_draft(await read_json(request))
    return json_ok(await orgs.create(database(request), caller, draft, now()), status=201)


async def expert_directory(request: web.Request) -> web.Response:
    caller = await current_person(request)
    q = forms.name_query(request.query)
    return json_ok(await experts.directory(database(request), caller, q, f.page(request.query)))


async def get_org(request: web.Request) -> web.Response:
    return json_ok(await orgs.get(database(request), _id(request, "org_id")))


async def assign_role(request: web.Request) -> web.Response:
    caller = await current_person(request)
    person_id, role = forms.role_grant(await read_json(request))
    grant, created = await orgs.assign_role(
        database(request), caller, _id(request, "org_id"), person_id, role, now()
    )
    return json_ok(grant, status=201 if created else 200)


# --- courses and sessions -------------------------------------------------------------------------------


async def list_courses(request: web.Request) -> web.Response:
    query = forms.course_query(request.query)
    caller = await optional_person(request)
    return json_ok(await search.search(database(request), caller, query, f.page(request.query), now()))


async def create_course(request: web.Request) -> web.Response:
    caller = await current_person(request)
    draft = forms.course_draft(await read_json(request))
    return json_ok(await courses.create(database(request), caller, draft, now()), status=201)


async def get_course(request: web.Request) -> web.Response:
    caller = await optional_person(request)
    return json_ok(await courses.get(database(request), caller, _id(request, "course_id"), now()))


async def update_course(request: web.Request) -> web.Response:
    caller = await current_person(request)
    changes = forms.course_changes(await read_json(request))
    return json_ok(await courses.update(database(request), caller, _id(request, "course_id"), changes, now()))


def _transition(action: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        caller = await current_person(request)
        return json_ok(
            await courses.transition(database(request), caller, _id(request, "course_id"), action, now())
        )

    handler.__name__ = f"{action}_course"
    return handler


async def add_session(request: web.Request) -> web.Response:
    caller = await current_person(request)
    draft = forms.session_draft(await read_json(request), now())
    return json_ok(
        await courses.add_session(database(request), caller, _id(request, "course_id"), draft, now()),
        status=201,
    )


async def get_session(request: web.Request) -> web.Response:
    caller = await optional_person(request)
    return json_ok(await courses.get_session(database(request), caller, _id(request, "session_id"), now()))


async def update_session(request: web.Request) -> web.Response:
    caller = await current_person(request)
    changes = forms.session_changes(await read_json(request), now())
    return json_ok(
        await courses.update_session(database(request), caller, _id(request, "session_id"), changes, now())
    )


async def set_experts(request: web.Request) -> web.Response:
    caller = await current_person(request)
    person_ids = forms.expert_ids(await read_json(request))
    return json_ok(
        await courses.set_experts(database(request), caller, _id(request, "session_id"), person_ids, now())
    )


async def media_token(request: web.Request) -> web.Response:
    caller = await current_person(request)
    purpose = forms.media_purpose(await read_json(request))
    return json_ok(
        await media.issue(
            database(request), settings(request), caller, _id(request, "session_id"), purpose, now()
        ),
        status=201,
    )


async def session_access(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await media.access(database(request), caller, _id(request, "session_id"), now()))


# --- enrollments ----------------------------------------------------------------------------------------


async def enroll(request: web.Request) -> web.Response:
    caller = await current_person(request)
    enrollment, created = await enrollments.enroll(
        database(request), caller, _id(request, "course_id"), now()
    )
    return json_ok(enrollment, status=201 if created else 200)


async def withdraw(request: web.Request) -> web.Response:
    caller = await current_person(request)
    hook = request.app.get(ON_WITHDRAWN)  # the live server closes what the learner has open
    return json_ok(
        await enrollments.withdraw(database(request), caller, _id(request, "course_id"), now(), hook)
    )


async def enroll_staff(request: web.Request) -> web.Response:
    caller = await current_person(request)
    course_id, person_ids = forms.employer_enrollment(await read_json(request))
    result = await enrollments.enroll_staff(
        database(request), caller, _id(request, "org_id"), course_id, person_ids, now()
    )
    return json_ok(result, status=201 if result["created"] else 200)


async def course_enrollments(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(
        await enrollments.of_course(
            database(request), caller, _id(request, "course_id"), f.page(request.query)
        )
    )


# --- attendance -----------------------------------------------------------------------------------------


async def course_attendance(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await attendance.of_course(database(request), caller, _id(request, "course_id"), now()))


async def session_attendance(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await attendance.of_session(database(request), caller, _id(request, "session_id"), now()))


# --- external attendance: file imports, the manual matching queue, learners' own accounts -------------


async def import_attendance(request: web.Request) -> web.Response:
    caller = await current_person(request)
    platform = forms.optional_platform(request.query)
    await external_imports.check_import_access(database(request), caller, _id(request, "session_id"))
    upload, file_name = await read_upload(request, "file", external_imports.MAX_FILE_BYTES)
    with upload:
        report = await external_imports.import_file(
            database(request),
            caller,
            session_id=_id(request, "session_id"),
            file=upload,
            file_name=file_name,
            now=now(),
            platform=platform,
        )
    return json_ok(report.as_json(), status=200 if report.already_imported else 201)


async def external_review(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await external_imports.review_queue(database(request), caller, _id(request, "session_id")))


async def match_external_record(request: web.Request) -> web.Response:
    caller = await current_person(request)
    person_id = forms.match_person(await read_json(request))
    return json_ok(
        await external_imports.match_record(
            database(request), caller, _id(request, "record_id"), person_id, now()
        )
    )


async def my_external_accounts(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await external_imports.my_accounts(database(request), caller))


async def link_my_external_account(request: web.Request) -> web.Response:
    caller = await current_person(request)
    vendor = external_imports.vendor_param(request.match_info["platform"])
    body = await read_json(request)
    return json_ok(
        await external_imports.link_my_account(
            database(request), caller, vendor, body.get("external_user_id"), now()
        )
    )


# --- replays --------------------------------------------------------------------------------------------


async def _with_media_cookie(
    response: web.Response, request: web.Request, caller: Caller, session_id: int
) -> web.Response:
    """Set (or renew) the caller's `lectern_media` cookie for the session's media (infra.media_access)."""
    grant = await replays.grant_media(
        database(request), settings(request).secret_key, caller, session_id, now()
    )
    response.set_cookie(
        media_access.COOKIE,
        grant.value,
        max_age=grant.max_age_s,
        path=grant.path,
        httponly=True,
        samesite="Lax",
        secure=settings(request).secure_cookies,
    )
    # The same grant for the overflow-HLS heartbeats (streaming/hls_evidence.py), scoped to their URL.
    response.set_cookie(
        media_access.BEAT_COOKIE,
        grant.value,
        max_age=grant.max_age_s,
        path=media_access.heartbeat_path(session_id),
        httponly=True,
        samesite="Strict",
        secure=settings(request).secure_cookies,
    )
    return response


async def get_replay(request: web.Request) -> web.Response:
    caller = await current_person(request)
    view = await replays.playback(database(request), caller, request.match_info["recording_id"])
    return await _with_media_cookie(json_ok(view), request, caller, view["session_id"])


async def hls_access(request: web.Request) -> web.Response:
    caller = await current_person(request)
    session_id = _id(request, "session_id")
    grant = await replays.grant_media(
        database(request), settings(request).secret_key, caller, session_id, now()
    )
    body = {"session_id": session_id, "prefix": grant.path, "expires_at": grant.expires_at.isoformat()}
    return await _with_media_cookie(json_ok(body), request, caller, session_id)


async def openapi_document(request: web.Request) -> web.Response:
    from catalog.openapi import document

    return json_ok(document(ROUTES))


# --- the route table ------------------------------------------------------------------------------------


CORE_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/auth/register",
        register,
        "Register a learner account",
        "anyone",
        "accounts",
        body=schemas.REGISTER,
        responses={
            202: "The same answer for a free phone (account created) and a taken one (nothing changed)",
            429: "Too many registrations from this address (Retry-After)",
        },
        login=False,
    ),
    Route(
        "POST",
        "/api/auth/login",
        login,
        "Log in; sets the lectern_session cookie and the lectern_device (known device) cookie",
        "anyone",
        "accounts",
        body=schemas.LOGIN,
        responses={200: "Logged in", 401: "Wrong phone or password", 429: "Too many failures (Retry-After)"},
        login=False,
    ),
    Route(
        "POST",
        "/api/auth/logout",
        logout,
        "Log out (ends the server-side session)",
        "logged in",
        "accounts",
        responses={204: "Logged out"},
    ),
    Route(
        "GET",
        "/api/me",
        get_me,
        "The caller and the roles they hold per organization",
        "logged in",
        "accounts",
    ),
    Route(
        "GET",
        "/api/me/learning",
        my_learning,
        "The caller's enrolled courses (paged, newest first); their sessions to come and past; replays",
        "logged in",
        "enrollments",
        query=("page", "page_size"),
    ),
    Route(
        "GET",
        "/api/me/teaching",
        my_teaching,
        "The sessions the caller teaches: live now or to come, and past (with their replays)",
        "logged in (who teaches nothing gets empty lists)",
        "sessions",
    ),
    Route(
        "GET",
        "/api/organizations",
        list_orgs,
        "List organizations",
        "anyone",
        "organizations",
        query=("type", "page", "page_size"),
        login=False,
    ),
    Route(
        "GET",
        "/api/experts",
        expert_directory,
        "Find experts to assign to sessions (name and organizations; no contact details)",
        "provider_admin (any provider), bureau, admin",
        "organizations",
        query=("q", "page", "page_size"),
    ),
    Route(
        "POST",
        "/api/organizations",
        create_org,
        "Register an organization",
        "admin, bureau",
        "organizations",
        body=schemas.ORG,
        responses={201: "Created"},
    ),
    Route(
        "GET",
        f"/api/organizations/{ORG}",
        get_org,
        "One organization",
        "anyone",
        "organizations",
        login=False,
    ),
    Route(
        "POST",
        f"/api/organizations/{ORG}/roles",
        assign_role,
        "Grant a person a role in the organization",
        "admin",
        "organizations",
        body=schemas.ROLE_GRANT,
        responses={201: "Granted", 200: "Already held"},
    ),
    Route(
        "GET",
        "/api/courses",
        list_courses,
        "Search courses (published; status=draft|archived|all with provider_id for its admins)",
        "anyone",
        "courses",
        query=(
            "status",
            "category",
            "industry",
            "provider_id",
            "delivery",
            "from",
            "to",
            "q",
            "sort",
            "page",
            "page_size",
        ),
        login=False,
    ),
    Route(
        "POST",
        "/api/courses",
        create_course,
        "Create a draft course",
        "provider_admin of provider_id",
        "courses",
        body=schemas.COURSE_CREATE,
        responses={201: "Created"},
    ),
    Route(
        "GET",
        f"/api/courses/{COURSE}",
        get_course,
        "One course with its sessions",
        "anyone (drafts: the provider's admins, bureau, admin)",
        "courses",
        login=False,
    ),
    Route(
        "PATCH",
        f"/api/courses/{COURSE}",
        update_course,
        "Change a course",
        "provider_admin of the course's provider",
        "courses",
        body=schemas.COURSE_PATCH,
    ),
    Route(
        "POST",
        f"/api/courses/{COURSE}/publish",
        _transition("publish"),
        "Publish a draft course",
        "provider_admin of the course's provider",
        "courses",
        responses={200: "OK", 409: "Not a draft"},
    ),
    Route(
        "POST",
        f"/api/courses/{COURSE}/archive",
        _transition("archive"),
        "Archive a course",
        "provider_admin of the course's provider",
        "courses",
        responses={200: "OK", 409: "Archived"},
    ),
    Route(
        "POST",
        f"/api/courses/{COURSE}/sessions",
        add_session,
        "Schedule a session",
        "provider_admin of the course's provider",
        "sessions",
        body=schemas.SESSION_CREATE,
        responses={201: "Created"},
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}",
        get_session,
        "One session with its experts",
        "anyone who can see the course",
        "sessions",
        login=False,
    ),
    Route(
        "PATCH",
        f"/api/sessions/{SESSION}",
        update_session,
        "Change a session",
        "provider_admin of the course's provider",
        "sessions",
        body=schemas.SESSION_PATCH,
    ),
    Route(
        "PUT",
        f"/api/sessions/{SESSION}/experts",
        set_experts,
        "Replace the session's experts",
        "provider_admin of the course's provider",
        "sessions",
        body=schemas.EXPERTS,
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/media-token",
        media_token,
        "A WHIP/WHEP token for the session",
        "whip: the session's experts; whep and room: experts, the provider's staff, enrolled learners",
        "sessions",
        body=schemas.MEDIA_TOKEN,
        responses={
            201: "Issued",
            409: "media window closed: course_not_published, too_early (whip), session_ended",
        },
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/hls-access",
        hls_access,
        "Set the cookie that opens the session's media under /hls/{session_id}/ (live HLS, replays, MP4)"
        " for an hour; the replay API sets and renews it too",
        "the session's experts, the provider's staff, enrolled learners, bureau, admin",
        "sessions",
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/access",
        session_access,
        "What the caller may do in the session's live room (publish, watch), asked before a camera is on",
        "logged in",
        "sessions",
    ),
    Route(
        "POST",
        f"/api/courses/{COURSE}/enroll",
        enroll,
        "Enroll oneself (idempotent)",
        "learners",
        "enrollments",
        responses={201: "Enrolled", 200: "Already enrolled", 409: "Full or not published"},
    ),
    Route(
        "POST",
        f"/api/courses/{COURSE}/withdraw",
        withdraw,
        "Withdraw one's enrollment",
        "logged in",
        "enrollments",
        responses={200: "Withdrawn", 409: "Not enrolled"},
    ),
    Route(
        "POST",
        f"/api/employers/{ORG}/enrollments",
        enroll_staff,
        "Enroll the employer's staff",
        "employer_admin of the employer",
        "enrollments",
        body=schemas.EMPLOYER_ENROLL,
        responses={201: "Enrolled", 200: "All already enrolled"},
    ),
    Route(
        "GET",
        f"/api/courses/{COURSE}/enrollments",
        course_enrollments,
        "Who is enrolled",
        "provider_admin of the course's provider, bureau, admin",
        "enrollments",
        query=("page", "page_size"),
    ),
    Route(
        "GET",
        f"/api/courses/{COURSE}/attendance",
        course_attendance,
        "Per session: learners who attended live, of them watching now, learners who watched the replay",
        "provider_admin of the course's provider, admin",
        "attendance",
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/attendance",
        session_attendance,
        "One session's attendance by learner: time present live (union of connections), replay position",
        "provider_admin of the course's provider, admin",
        "attendance",
    ),
    Route(
        "GET",
        f"/api/replays/{RECORDING}",
        get_replay,
        "Playback of a replay: angles with HLS and MP4 URLs, duration, the caller's saved progress",
        "learners enrolled in the course, the provider's staff, the session's experts, bureau, admin",
        "replays",
    ),
    Route(
        "POST",
        f"/api/replays/{RECORDING}/playback",
        playback_routes.open_replay_playback,
        "Open a playback (a learning client) of a replay: its token, heartbeat period, check window, resume"
        " point; the caller's other learning clients are superseded (one active client per person)",
        "learners enrolled in the course, the provider's staff, the session's experts, bureau, admin",
        "replays",
        responses={201: "Opened"},
    ),
    Route(
        "POST",
        f"/api/playback/{PLAYBACK_CLIENT}/heartbeats",
        playback_routes.playback_heartbeat,
        "A playback heartbeat (position, rate, visibility, seq), recorded as evidence; answers with the"
        " presence check to show, if one is due",
        "the login that opened the playback, with its token",
        "replays",
        body=schemas.PLAYBACK_HEARTBEAT,
        responses={
            200: "Accepted",
            401: "No login, or a forged, malformed or expired token",
            403: "The token is another playback's, or was opened by another login",
            409: "superseded: a newer learning client of the person took over",
            429: "Too many heartbeats in one period (Retry-After)",
        },
    ),
    Route(
        "POST",
        f"/api/playback/{PLAYBACK_CLIENT}/checks/{CHECK}",
        playback_routes.answer_replay_check,
        "Answer a replay presence check with its nonce (latency measured by the server)",
        "the login that opened the playback, with its token",
        "replays",
        body=schemas.CHECK_ANSWER,
        responses={
            200: "Answered",
            401: "No login, or a forged, malformed or expired token",
            403: "Wrong nonce, another playback's token, or another login",
            409: "check_not_issued, check_expired, check_answered or superseded",
        },
    ),
    # --- credit (catalog.credit.handlers) ---
    Route(
        "GET",
        "/api/credit-policy",
        credit.get_policy,
        "The credit policy in force (its version and parameters; version 0 is the built-in default)",
        "logged in",
        "credit",
    ),
    Route(
        "GET",
        "/api/credit-policy/versions",
        credit.policy_versions,
        "Every version of the credit policy, newest first, with who made it, when and why",
        "admin, bureau",
        "credit",
    ),
    Route(
        "POST",
        "/api/credit-policy",
        credit.create_policy,
        "A new version of the credit policy (full parameters; missing ones take the built-in default)."
        " Credit already computed keeps the version it names",
        "admin",
        "credit",
        body=schemas.CREDIT_POLICY,
        responses={201: "Created", 409: "Another version was saved at the same time"},
    ),
    Route(
        "GET",
        "/api/me/credits",
        credit.my_credits,
        "The caller's credit year: 学时 by 公需/专业 against the requirement (registered and pending apart),"
        " entries per course with their evidence, sessions attended without credit yet and why",
        "logged in",
        "credit",
        query=("year",),
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/credits",
        credit.session_credits,
        "Per learner of a session: live and overflow-HLS present time, replay clients, checks answered of"
        " those issued, credited minutes and 学时 with status and policy version, flags",
        "provider_admin of the course's provider, bureau, admin",
        "attendance",
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/attendance.csv",
        credit.attendance_csv,
        "The session's credit table as CSV (UTF-8 with BOM; phone numbers masked)",
        "provider_admin of the course's provider, bureau, admin",
        "attendance",
        content_type="text/csv",
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/attendance.xlsx",
        credit.attendance_xlsx,
        "The session's credit table as an XLSX workbook (phone numbers masked)",
        "provider_admin of the course's provider, bureau, admin",
        "attendance",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/time-corrections",
        credit.create_correction,
        "Correct a session's actual times (audited; the server's own times stay; credit uses the latest"
        " correction and names it)",
        "provider_admin of the course's provider, admin",
        "attendance",
        body=schemas.TIME_CORRECTION,
        responses={201: "Recorded"},
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/time-corrections",
        credit.list_corrections,
        "A session's time corrections, newest first, with the server's own times",
        "provider_admin of the course's provider, bureau, admin",
        "attendance",
    ),
    Route(
        "GET",
        "/api/fraud-flags",
        credit.list_flags,
        "The review list: fraud and anomaly flags with their evidence, newest first",
        "provider_admin (flags on their courses), bureau, admin (all)",
        "review",
        query=("status", "course_id", "page", "page_size"),
    ),
    Route(
        "POST",
        f"/api/fraud-flags/{FLAG}/resolve",
        credit.resolve_flag,
        "Dismiss or confirm an open flag, saying what was found (audited)",
        "provider_admin of the flag's course, admin",
        "review",
        body=schemas.FLAG_RESOLVE,
        responses={200: "Resolved", 409: "Already resolved"},
    ),
    Route(
        "GET",
        f"/api/organizations/{ORG}/integrations/{PLATFORM}",
        external_api.get_credentials,
        "Whether the organization's Tencent Meeting / DingTalk credentials are set (never the values)",
        "provider_admin of the organization, admin",
        "external",
    ),
    Route(
        "PUT",
        f"/api/organizations/{ORG}/integrations/{PLATFORM}",
        external_api.put_credentials,
        "Set or replace the organization's platform credentials (stored encrypted, never shown again)",
        "provider_admin of the organization, admin",
        "external",
        body=schemas.CREDENTIALS,
        responses={200: "Stored", 503: "No credentials key configured"},
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/external",
        external_api.get_link,
        "The session's link to a Tencent meeting or DingTalk conference / live, and its import batches",
        "provider_admin of the course's provider, admin",
        "external",
    ),
    Route(
        "PUT",
        f"/api/sessions/{SESSION}/external",
        external_api.put_link,
        "Link an external session to a Tencent meeting (id or 9-digit code) or a DingTalk conference / live",
        "provider_admin of the course's provider, admin",
        "external",
        body=schemas.EXTERNAL_LINK,
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/external/pull",
        external_api.pull,
        "Fetch the linked meeting's attendance from the platform and store it (idempotent)",
        "provider_admin of the course's provider, admin",
        "external",
        responses={
            201: "The per-row report of the pull (already_imported: the same records as an earlier pull)",
            503: "The platform did not answer after retries",
        },
    ),
    Route(
        "GET",
        f"/api/integrations/tencent/webhook/{ORG}",
        external_api.tencent_webhook_check,
        "Tencent Meeting's URL verification: answers check_str's plaintext (text/plain) if signed",
        "Tencent Meeting (signature with the organization's webhook token)",
        "external",
        query=("check_str",),
        login=False,
    ),
    Route(
        "POST",
        f"/api/integrations/tencent/webhook/{ORG}",
        external_api.tencent_webhook,
        "Tencent Meeting participant joined/left events (signed; a replayed timestamp+nonce is refused)",
        "Tencent Meeting (signature with the organization's webhook token)",
        "external",
        body=schemas.TENCENT_WEBHOOK,
        login=False,
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/external/import",
        import_attendance,
        "Import an attendance file exported from Tencent Meeting or DingTalk (CSV or .xlsx, multipart field"
        " `file`, at most 20 MB): every row matched, queued for review or skipped, with the reason",
        "provider_admin of the course's provider",
        "external",
        query=("platform",),
        responses={
            201: "Imported: the report",
            200: "This file was imported before: that import's report, nothing changed",
            400: "Not a readable attendance file, or a file of another meeting",
            413: "Larger than 20 MB",
        },
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/external/review",
        external_review,
        "External attendance waiting for a person to match (unmatched and dial-in rows), by participant",
        "provider_admin of the course's provider",
        "external",
    ),
    Route(
        "POST",
        "/api/external-records/{record_id:\\d+}/match",
        match_external_record,
        "Match an external record (and its participant's other waiting rows in that import) to an enrolled"
        " learner, or to nobody (person_id null); audited",
        "provider_admin of the course's provider",
        "external",
        body=schemas.EXTERNAL_MATCH,
        responses={200: "Matched", 409: "The person is not enrolled in the course"},
    ),
    Route(
        "GET",
        "/api/me/external-accounts",
        my_external_accounts,
        "The caller's linked Tencent Meeting / DingTalk accounts",
        "logged in",
        "external",
    ),
    Route(
        "PUT",
        "/api/me/external-accounts/{platform:tencent|dingtalk}",
        link_my_external_account,
        "Link one's own Tencent userid / DingTalk unionId (unverified until an import confirms it by phone"
        " or a provider matches a record of it)",
        "logged in",
        "external",
        body=schemas.EXTERNAL_ACCOUNT,
        responses={200: "Linked", 409: "Linked to someone else"},
    ),
    Route(
        "GET",
        "/api/openapi.json",
        openapi_document,
        "This document (OpenAPI 3.1)",
        "anyone",
        "meta",
        login=False,
    ),
)

# Feature modules declare their own routes (catalog.routing.Route) and are added here.
ROUTES: tuple[Route, ...] = (
    CORE_ROUTES
    + approval_routes.ROUTES
    + certificate_routes.ROUTES
    + employer_routes.ROUTES
    + supervision_routes.ROUTES
    + mentorship_routes.ROUTES
    + plan_routes.ROUTES
    + offline_routes.ROUTES
    + courseware_routes.ROUTES
    + upload_routes.ROUTES
)


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
