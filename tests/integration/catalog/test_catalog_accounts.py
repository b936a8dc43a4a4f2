"""Accounts over HTTP: register, log in with a cookie, CSRF, log out, throttling, expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

import catalog
from catalog.models import AuthSession
from tests.integration.catalog.conftest import PASSWORD, make_app

if TYPE_CHECKING:
    from infra.settings import Settings
    from tests.integration.catalog.conftest import AiohttpClient, World

Client = TestClient[web.Request, web.Application]


async def register(client: Client, phone: str = "13912345678", password: str = "s3cret-enough") -> None:
    resp = await client.post(
        "/api/auth/register", json={"phone": phone, "password": password, "name": "张三"}
    )
    assert resp.status == 201, await resp.text()


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


async def test_registering_a_taken_phone_is_a_conflict_naming_the_phone(client: Client) -> None:
    await register(client)
    resp = await client.post(
        "/api/auth/register", json={"phone": "13912345678", "password": "another-password", "name": "李四"}
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["field"] == "phone"


async def test_wrong_password_is_401_and_does_not_say_which_part_was_wrong(client: Client) -> None:
    await register(client)
    for phone in ("13912345678", "13900000000"):
        resp = await client.post("/api/auth/login", json={"phone": phone, "password": "wrong-password"})
        assert resp.status == 401
        assert (await resp.json())["error"]["message"] == "wrong phone number or password"


async def test_five_failures_for_a_phone_lock_it_with_retry_after(client: Client) -> None:
    await register(client)
    for _ in range(5):
        resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "nope-nope"})
        assert resp.status == 401
    # Locked now, even with the right password.
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 429
    retry_after = int(resp.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60 + 1
    assert (await resp.json())["error"]["code"] == "too_many_requests"


async def test_five_failures_from_one_address_lock_other_phones_too(client: Client) -> None:
    await register(client)
    for i in range(5):
        resp = await client.post(
            "/api/auth/login", json={"phone": f"1370000000{i}", "password": "guess-guess"}
        )
        assert resp.status == 401
    resp = await client.post("/api/auth/login", json={"phone": "13912345678", "password": "s3cret-enough"})
    assert resp.status == 429
    assert "Retry-After" in resp.headers


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
