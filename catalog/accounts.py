"""Accounts: registration, password login with throttling, server-side sessions, the caller's roles.

Passwords are hashed with argon2id in a worker thread; the cookie carries a random token of which only
the SHA-256 is stored. Nothing here logs a password, a token or a phone number.
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

from catalog import queries, throttle, throttle_store
from catalog.db import Database
from catalog.domain import PROVIDER_TYPES, Caller, OrgType, Role
from catalog.models import AuthSession, Organization, Person, RoleAssignment, UTCDateTime
from infra import tokens
from infra.errors import Invalid, TooMany, Unauthenticated
from infra.settings import Settings

log = logging.getLogger(__name__)

# A known device: a browser that logged in to the account before holds a signed cookie naming the account
# and a random device id. Its attempts count against the device alone (catalog/throttle.py).
DEVICE_PURPOSE = "device"
DEVICE_TTL = timedelta(days=365)

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
    device: str  # the known-device cookie: issued, or renewed, by every successful login
    device_expires_at: datetime


def _throttled(wait_s: int, message: str) -> TooMany:
    return TooMany(message, details={"retry_after_s": wait_s})


async def register(
    db: Database,
    *,
    phone: str,
    password: str,
    name: str,
    employer_org_id: int | None,
    address: str,
    now: datetime,
) -> None:
    """Create a learner for a phone that has no account; change nothing for one that has.

    The caller cannot tell which happened from the answer, nor from its timing: argon2 runs in both
    cases, and only after the cheap checks and the per-address throttle have passed.
    """
    if employer_org_id is not None:
        async with db.sessions() as s:
            org = await s.get(Organization, employer_org_id)
        if org is None or org.type != OrgType.EMPLOYER:
            raise Invalid("employer_id is not an employer organization", field="employer_id")
    async with db.sessions.begin() as s:
        wait = await throttle_store.admit(
            s, [(throttle.REGISTER_ADDRESS, throttle.address_key(address))], now
        )
    if wait is not None:
        log.warning("registration throttled address=%s retry_after_s=%s", address, wait)
        raise _throttled(wait, f"too many registrations from this address; try again in {wait} s")
    password_hash = await hash_password(password)
    try:
        async with db.sessions.begin() as s:
            if await queries.person_by_phone(s, phone) is not None:
                log.info("registration for a phone that has an account: nothing changed")
                return
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
        # Two registrations of the same phone raced; the unique index decided, and the answer is the same.
        log.info("registration for a phone that has an account: nothing changed")
        return
    log.info("registered person=%s", person.id)


def _known_device(settings: Settings, cookie: str, person_id: int, now: datetime) -> str | None:
    """The device id in a known-device cookie issued to this person, or None."""
    try:
        claims = tokens.verify(settings.secret_key, DEVICE_PURPOSE, cookie, now.timestamp())
    except Unauthenticated:
        return None
    if claims.person_id != person_id or not claims.subject.startswith("device:"):
        return None
    return claims.subject.removeprefix("device:")


def _device_cookie(settings: Settings, person_id: int, device_id: str, expires_at: datetime) -> str:
    claims = tokens.Claims(person_id, f"device:{device_id}", "", expires_at.timestamp(), {})
    return tokens.sign(settings.secret_key, DEVICE_PURPOSE, claims)


async def login(
    db: Database,
    settings: Settings,
    *,
    phone: str,
    password: str,
    address: str,
    device: str,
    now: datetime,
) -> LoginResult:
    """Check the password and open a session; TooMany (details.retry_after_s) when throttled.

    `device` is the caller's known-device cookie ("" when none). From a device this account logged in
    on before, only that device's own failures slow it down; otherwise the phone's and the address's do.
    """
    # Short transactions on purpose: no connection is held while argon2 runs in a thread.
    async with db.sessions() as s:
        person = await queries.person_by_phone(s, phone)
    device_id = _known_device(settings, device, person.id, now) if person and device else None
    checks: list[throttle_store.Check] = (
        [(throttle.LOGIN_DEVICE, device_id)]
        if device_id
        else [(throttle.LOGIN_PHONE, phone), (throttle.LOGIN_ADDRESS, throttle.address_key(address))]
    )
    # Counted before the password is checked: parallel attempts each see the ones before them.
    async with db.sessions.begin() as s:
        wait = await throttle_store.admit(s, checks, now)
    if wait is not None:
        log.warning(
            "login throttled address=%s known_device=%s retry_after_s=%s", address, bool(device_id), wait
        )
        raise _throttled(wait, f"too many failed logins; try again in {wait} s")
    ok = await asyncio.to_thread(_verify, person.password_hash if person else _DUMMY_HASH, password)
    if not ok or person is None:
        log.info("login failed address=%s known_device=%s", address, bool(device_id))
        raise Unauthenticated("wrong phone number or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.session_ttl_s)
    async with db.sessions.begin() as s:
        await throttle_store.refund(s, checks)  # the counts are of failures
        s.add(
            AuthSession(
                token_hash=token_hash(token),
                person_id=person.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=expires_at,
            )
        )
        # Housekeeping: this person's expired sessions go, and counts that no longer count.
        await s.execute(
            delete(AuthSession).where(AuthSession.person_id == person.id, AuthSession.expires_at <= now)
        )
        await throttle_store.forget_stale(s, now)
    log.info("login person=%s known_device=%s", person.id, bool(device_id))
    device_expires_at = now + DEVICE_TTL
    return LoginResult(
        token=token,
        csrf_token=csrf,
        expires_at=expires_at,
        person=person_view(person),
        device=_device_cookie(settings, person.id, device_id or secrets.token_urlsafe(16), device_expires_at),
        device_expires_at=device_expires_at,
    )


async def logout(db: Database, token: str) -> None:
    async with db.sessions.begin() as s:
        await s.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))


# The caller behind a token, one row per role they hold (one row with NULL role when they hold none),
# with the type and sector of the role's organization:
# every request with a cookie runs this, so it is one prebuilt statement and one round trip.
_CALLER_BY_TOKEN = (
    select(
        AuthSession.csrf_token,
        Person.id,
        Person.employer_org_id,
        RoleAssignment.role,
        RoleAssignment.org_id,
        Organization.type.label("org_type"),  # a bureau role's organization says what it supervises
        Organization.sector.label("org_sector"),
    )
    .join(Person, Person.id == AuthSession.person_id)
    .outerjoin(RoleAssignment, RoleAssignment.person_id == Person.id)
    .outerjoin(Organization, Organization.id == RoleAssignment.org_id)
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
    roles = frozenset((Role(r.role), r.org_id) for r in rows if r.role is not None)
    bureaus = [
        (r.org_type, r.org_sector) for r in rows if r.role == Role.BUREAU.value and r.org_id is not None
    ]
    sector_providers = None
    if (
        bureaus
        and not any(r == Role.ADMIN for r, _ in roles)
        and not any(kind == OrgType.HRSS_BUREAU.value for kind, _ in bureaus)
    ):
        sectors = sorted(
            {sector for kind, sector in bureaus if kind == OrgType.INDUSTRY_DEPT.value and sector}
        )
        sector_providers = await _sector_providers(db, sectors)
    return Caller(
        person_id=first.id,
        employer_org_id=first.employer_org_id,
        roles=roles,
        csrf_token=first.csrf_token,
        sector_providers=sector_providers,
    )


async def _sector_providers(db: Database, sectors: list[str]) -> frozenset[int]:
    """The providers an industry department's staff supervise: those in its sectors (none while its sector
    is not set). A second query, made for this role only."""
    if not sectors:
        return frozenset()
    async with db.reading() as conn:
        ids = await conn.scalars(
            select(Organization.id).where(
                Organization.sector.in_(sectors),
                Organization.type.in_([t.value for t in PROVIDER_TYPES]),
            )
        )
        return frozenset(ids)


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
