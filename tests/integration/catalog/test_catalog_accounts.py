"""Accounts over HTTP: register, log in with a cookie, CSRF, log out, throttling, expiry.

The throttle's attacks (strangers against an owner, parallel attempts, forwarded addresses) are in
test_catalog_login_throttle.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

import catalog
from catalog.models import AuthSession, Person, Throttle
from tests.integration.catalog.conftest import PASSWORD, make_app

if TYPE_CHECKING:
    from infra.settings import Settings
    from tests.integration.catalog.conftest import AiohttpClient, World

Client = TestClient[web.Request, web.Application]


async def register(client: Client, phone: str = "13912345678", password: str = "s3cret-enough") -> None:
    resp = await client.post(
        "/api/auth/register", json={"phone": phone, "password": password, "name": "张三"}
    )
    assert resp.status == 202, await resp.text()


async def test_registered_learner_logs_in_uses_the_cookie_and_logs_out(client: Client) -> None:
    await register(client)
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert "password_hash" not in body["person"]
    cookie = resp.cookies["lectern_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert cookie["path"] == "/"
    me = await (await client.get("/api/me")).json()
    assert me["person"]["phone"] == "13912345678"
    assert me["roles"] == [{"role": "learner", "org_id": None, "org_name": None, "org_type": None}]
    # A write without the CSRF header is refused even though the cookie is valid.
    assert (await client.post("/api/auth/logout")).status == 403
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert resp.status == 204
    assert (await client.get("/api/me")).status == 401


async def test_session_cookie_is_secure_when_configured(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    client = await aiohttp_client(make_app(replace(settings, secure_cookies=True)))
    await register(client)
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.cookies["lectern_session"]["secure"] is True


async def test_registering_answers_the_same_for_a_taken_and_a_free_phone_and_changes_nothing_for_a_taken_one(
    client: Client,
) -> None:
    async def attempt(phone: str, password: str, name: str) -> tuple[int, dict[str, Any], set[str]]:
        resp = await client.post(
            "/api/auth/register", json={"phone": phone, "password": password, "name": name}
        )
        return resp.status, await resp.json(), set(resp.headers) - {"Date"}

    free = await attempt("13912345678", "s3cret-enough", "张三")
    taken = await attempt("13912345678", "another-password", "李四")
    assert free == taken
    assert free[0] == 202
    assert "log in" in free[1]["message"]
    # The account is the first one, unchanged: its password, its name, and only one of it.
    assert (
        await client.post("/api/auth/login", json={"phone": "13912345678", "password": "another-password"})
    ).status == 401
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 200
    assert (await resp.json())["person"]["name"] == "张三"
    async with client.app[catalog.DATABASE].sessions() as s:
        assert await s.scalar(select(func.count()).where(Person.phone == "13912345678")) == 1


async def test_wrong_password_is_401_and_does_not_say_which_part_was_wrong(client: Client) -> None:
    await register(client)
    for phone in ("13912345678", "13900000000"):
        resp = await client.post("/api/auth/login", json={"phone": phone, "password": "wrong-password"})
        assert resp.status == 401
        assert (await resp.json())["error"]["message"] == "wrong phone number or password"


async def wait_passes(client: Client, seconds: float) -> None:
    """As if `seconds` went by for the throttle: every count's last attempt moves into the past."""
    async with client.app[catalog.DATABASE].sessions.begin() as s:
        for row in (await s.scalars(select(Throttle))).all():
            row.last_at -= timedelta(seconds=seconds)


async def fail(client: Client, phone: str) -> None:
    """One wrong password that reaches the check, waiting out any Retry-After first."""
    while True:
        resp = await client.post("/api/auth/login", json={"phone": phone, "password": "nope-nope"})
        if resp.status == 401:
            return
        assert resp.status == 429
        await wait_passes(client, int(resp.headers["Retry-After"]))


async def test_after_five_failures_for_a_phone_even_the_right_password_waits_then_gets_in(
    client: Client,
) -> None:
    await register(client)
    for _ in range(5):
        resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "nope-nope"})
        assert resp.status == 401
    # Beyond five, each failure doubles the wait (exactly: test_catalog_login_throttle.py): 8 s after three.
    for _ in range(3):
        await fail(client, "13912345678")
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 429
    retry_after = int(resp.headers["Retry-After"])
    assert 0 < retry_after <= 8  # seconds, not the 15 minutes of a lock
    body = await resp.json()
    assert body["error"]["code"] == "too_many_requests"
    assert body["error"]["details"] == {"retry_after_s": retry_after}
    await wait_passes(client, retry_after)
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 200


async def test_twenty_failures_from_one_address_make_its_other_phones_wait_too(client: Client) -> None:
    await register(client)
    for i in range(20):
        resp = await client.post(
            "/api/auth/login", json={"phone": f"137000000{i:02d}", "password": "guess-guess"}
        )
        assert resp.status == 401
    for i in range(3):  # the address now waits 8 s
        await fail(client, f"136000000{i:02d}")
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 8


async def test_an_expired_session_is_unauthenticated(client: Client, world: World) -> None:
    db = client.app[catalog.DATABASE]
    async with db.sessions.begin() as s:
        await s.execute(update(AuthSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    resp = await client.get("/api/me", headers=world.actors["learner"].headers)
    assert resp.status == 401


async def test_seeded_people_can_log_in_with_their_password(client: Client, world: World) -> None:
    resp = await client.post(
        "/api/auth/login", json={"phone": world.actors["admin"].phone, "password": PASSWORD}
    )
    assert resp.status == 200
    me = await (await client.get("/api/me")).json()
    assert [r["role"] for r in me["roles"]] == ["admin"]


async def test_a_person_holding_no_role_is_still_the_caller(client: Client, world: World) -> None:
    nobody = await world.person("nobody", [])
    resp = await client.get("/api/me", headers=nobody.headers)
    assert resp.status == 200
    assert (await resp.json())["roles"] == []
    resp = await client.get("/api/me/learning", headers=nobody.headers)
    assert (resp.status, (await resp.json())["items"]) == (200, [])
