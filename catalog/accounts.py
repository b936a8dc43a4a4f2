"""Accounts: registration, password login with throttling, server-side sessions, the caller's roles.

Passwords are hashed with argon2id in a worker thread; the cookie carries a random token of which only
the SHA-256 is stored. Nothing here logs a password or a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.db import Database
from catalog.domain import Caller, OrgType, Role
from catalog.models import AuthSession, LoginAttempt, Organization, Person, RoleAssignment, UTCDateTime
from infra.errors import Conflict, Invalid, TooMany, Unauthenticated
from infra.settings import Settings

log = logging.getLogger(__name__)

MAX_FAILURES = 5  # per phone and per IP address, within THROTTLE_WINDOW
THROTTLE_WINDOW = timedelta(minutes=15)

# argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile). Stateless configuration, not state.
_HASHER = PasswordHasher()
# Verified against when the phone is unknown, so that timing does not reveal which phones exist.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$KN0kynt9FeQDbCzAm/Rr2w$sTCKiYRDhXHZy6SgA84CCa3evtmMCGoi/3kV310tTys"
)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LoginResult:
    token: str  # goes into the cookie, never into a log line
    csrf_token: str
    expires_at: datetime
    person: dict[str, Any]


async def register(
    db: Database, *, phone: str, password: str, name: str, employer_org_id: int | None, now: datetime
) -> dict[str, Any]:
    """Create a person holding the learner role; Conflict when the phone is taken."""
    password_hash = await hash_password(password)
    try:
        async with db.sessions.begin() as s:
            if employer_org_id is not None:
                org = await s.get(Organization, employer_org_id)
                if org is None or org.type != OrgType.EMPLOYER:
                    raise Invalid("employer_id is not an employer organization", field="employer_id")
            if await queries.person_by_phone(s, phone) is not None:
                raise Conflict("this phone number is already registered", field="phone")
            person = Person(
                name=name,
                phone=phone,
                password_hash=password_hash,
                employer_org_id=employer_org_id,
                created_at=now,
            )
            s.add(person)
            await s.flush()
            s.add(
                RoleAssignment(
                    person_id=person.id, role=Role.LEARNER.value, org_id=employer_org_id, created_at=now
                )
            )
    except IntegrityError:
        # Two registrations of the same phone raced; the unique index decided.
        raise Conflict("this phone number is already registered", field="phone") from None
    log.info("registered person=%s", person.id)
    return person_view(person)


def _retry_after_s(failures: list[datetime], now: datetime) -> int | None:
    """Seconds until fewer than MAX_FAILURES remain in the window, or None when not throttled."""
    if len(failures) < MAX_FAILURES:
        return None
    newest_first = sorted(failures, reverse=True)
    frees_at = newest_first[MAX_FAILURES - 1] + THROTTLE_WINDOW
    return max(1, int((frees_at - now).total_seconds()) + 1)


async def _failures(s: AsyncSession, column: Any, value: str, now: datetime) -> list[datetime]:
    rows = await s.scalars(
        select(LoginAttempt.at).where(
            column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.at > now - THROTTLE_WINDOW
        )
    )
    return list(rows)


async def login(
    db: Database, settings: Settings, *, phone: str, password: str, ip: str, now: datetime
) -> LoginResult:
    """Check the password and open a session; TooMany (details.retry_after_s) when throttled."""
    # Three short transactions on purpose: no connection is held while argon2 runs in a thread.
    async with db.sessions.begin() as s:
        waits = [
            _retry_after_s(await _failures(s, LoginAttempt.phone, phone, now), now),
            _retry_after_s(await _failures(s, LoginAttempt.ip, ip, now), now),
        ]
        person = await queries.person_by_phone(s, phone)
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        log.warning("login throttled ip=%s retry_after_s=%s", ip, wait)
        raise TooMany("too many failed logins; try again later", details={"retry_after_s": wait})
    ok = await asyncio.to_thread(_verify, person.password_hash if person else _DUMMY_HASH, password)
    async with db.sessions.begin() as s:
        s.add(LoginAttempt(phone=phone, ip=ip, succeeded=ok and person is not None, at=now))
        if not ok or person is None:
            log.info("login failed ip=%s", ip)
            # Committed before raising: the failure must count towards the throttle.
            failed = True
        else:
            failed = False
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            expires_at = now + timedelta(seconds=settings.session_ttl_s)
            s.add(
                AuthSession(
                    token_hash=token_hash(token),
                    person_id=person.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            # Housekeeping: this person's expired sessions go.
            await s.execute(
                delete(AuthSession).where(AuthSession.person_id == person.id, AuthSession.expires_at <= now)
            )
    if failed or person is None:
        raise Unauthenticated("wrong phone number or password")
    log.info("login person=%s", person.id)
    return LoginResult(token=token, csrf_token=csrf, expires_at=expires_at, person=person_view(person))


async def logout(db: Database, token: str) -> None:
    async with db.sessions.begin() as s:
        await s.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))


# The caller behind a token, one row per role they hold (one row with NULL role when they hold none):
# every request with a cookie runs this, so it is one prebuilt statement and one round trip.
_CALLER_BY_TOKEN = (
    select(
        AuthSession.csrf_token,
        Person.id,
        Person.employer_org_id,
        RoleAssignment.role,
        RoleAssignment.org_id,
    )
    .join(Person, Person.id == AuthSession.person_id)
    .outerjoin(RoleAssignment, RoleAssignment.person_id == Person.id)
    .where(
        AuthSession.token_hash == bindparam("token_hash"),
        AuthSession.expires_at > bindparam("now", type_=UTCDateTime()),
    )
)


async def authenticate(db: Database, token: str, now: datetime) -> Caller | None:
    """The caller behind a session token, or None when it is unknown or expired."""
    async with db.reading() as conn:
        rows = (await conn.execute(_CALLER_BY_TOKEN, {"token_hash": token_hash(token), "now": now})).all()
    if not rows:
        return None
    first = rows[0]
    return Caller(
        person_id=first.id,
        employer_org_id=first.employer_org_id,
        roles=frozenset((Role(r.role), r.org_id) for r in rows if r.role is not None),
        csrf_token=first.csrf_token,
    )


async def me(db: Database, caller: Caller) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        person = await s.get(Person, caller.person_id)
        if person is None:
            raise Unauthenticated("the account no longer exists")
        rows = (
            await s.execute(
                select(RoleAssignment, Organization)
                .outerjoin(Organization, Organization.id == RoleAssignment.org_id)
                .where(RoleAssignment.person_id == person.id)
                .order_by(RoleAssignment.id)
            )
        ).all()
    roles = [
        {
            "role": ra.role,
            "org_id": ra.org_id,
            "org_name": org.name if org else None,
            "org_type": org.type if org else None,
        }
        for ra, org in rows
    ]
    return {"person": person_view(person), "roles": roles}


async def count_sessions(db: Database, person_id: int) -> int:
    async with db.sessions.begin() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(AuthSession).where(AuthSession.person_id == person_id)
            )
            or 0
        )


def person_view(person: Person) -> dict[str, Any]:
    """A person as the person themself (or an admin) sees it: never the password hash."""
    return {
        "id": person.id,
        "name": person.name,
        "phone": person.phone,
        "employer_org_id": person.employer_org_id,
        "created_at": person.created_at.isoformat(),
    }
