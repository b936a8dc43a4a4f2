"""Login and registration throttling cannot be turned against the people it protects.

Strangers' failures slow a phone down but never shut its owner out: not at all on the owner's known
device, for at most a few minutes elsewhere. Parallel attempts are counted one after another. A
forwarded address counts only when a trusted proxy forwarded it. (Real databases: SQLite and PostgreSQL.)

Over HTTP the clock is the real one; "time passes" by moving the counts' last attempt into the past. The
exact arithmetic is tested at the service level with the clock in hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

import catalog
from catalog import accounts, throttle
from catalog.models import Person, Throttle
from infra.appkeys import SETTINGS
from infra.errors import TooMany, Unauthenticated
from tests.integration.catalog.conftest import PASSWORD, make_app

if TYPE_CHECKING:
    from infra.settings import Settings
    from tests.integration.catalog.conftest import AiohttpClient, World

Client = TestClient[web.Request, web.Application]

OWNER_ADDRESS = "198.51.100.10"


@pytest.fixture
async def proxied(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    """The catalog behind a proxy on 127.0.0.1 (the test client's address), trusted to forward."""
    return await aiohttp_client(make_app(replace(settings, trusted_proxies=("127.0.0.1",))))


async def login(
    client: Client, phone: str, password: str, *, address: str, device: str = ""
) -> tuple[int, str, str]:
    """(status, Retry-After, the known-device cookie set) of one login from `address` via the proxy."""
    headers = {"X-Forwarded-For": address}
    if device:
        headers["Cookie"] = f"lectern_device={device}"
    resp = await client.post("/api/auth/login", json={"phone": phone, "password": password}, headers=headers)
    set_device = resp.cookies["lectern_device"].value if "lectern_device" in resp.cookies else ""
    client.session.cookie_jar.clear()  # each attempt says itself which cookies it carries
    return resp.status, resp.headers.get("Retry-After", ""), set_device


async def wait_passes(client: Client, seconds: float) -> None:
    """As if `seconds` went by for the throttle: every count's last attempt moves into the past."""
    async with client.app[catalog.DATABASE].sessions.begin() as s:
        for row in (await s.scalars(select(Throttle))).all():
            row.last_at -= timedelta(seconds=seconds)


async def fail(client: Client, phone: str, *, address: str) -> None:
    """One wrong password that reaches the check: a patient stranger waits out every Retry-After."""
    while True:
        status, retry_after, _ = await login(client, phone, "wrong-guess", address=address)
        if status == 401:
            return
        assert status == 429
        await wait_passes(client, int(retry_after))


async def counted(client: Client, policy: throttle.Policy, key: str) -> int:
    async with client.app[catalog.DATABASE].sessions() as s:
        n = await s.scalar(select(Throttle.count).where(Throttle.scope == policy.scope, Throttle.key == key))
        return int(n or 0)


async def test_twenty_strangers_failures_do_not_stop_the_owner_on_their_known_device(
    proxied: Client, world: World
) -> None:
    owner = world.actors["learner"].phone
    status, _, device = await login(proxied, owner, PASSWORD, address=OWNER_ADDRESS)
    assert status == 200
    assert device
    # Twenty strangers from twenty addresses, then twenty more from the owner's own address (an office),
    # every one of them reaching the password check.
    for i in range(20):
        await fail(proxied, owner, address=f"203.0.113.{i + 1}")
    for _ in range(20):
        await fail(proxied, owner, address=OWNER_ADDRESS)
    assert await counted(proxied, throttle.LOGIN_PHONE, owner) == 40
    # From the known device the owner gets in at once, from the very address the strangers used.
    status, _, renewed = await login(proxied, owner, PASSWORD, address=OWNER_ADDRESS, device=device)
    assert status == 200
    assert renewed  # renewed with each login
    # On a new device the owner waits, for minutes at most (not 15), and then gets in.
    status, retry_after, _ = await login(proxied, owner, PASSWORD, address="192.0.2.50")
    assert status == 429
    assert 0 < int(retry_after) <= throttle.LOGIN_PHONE.max_delay_s == 300
    await wait_passes(proxied, int(retry_after))
    status, _, _ = await login(proxied, owner, PASSWORD, address="192.0.2.50")
    assert status == 200


async def test_each_failure_beyond_five_doubles_the_wait_up_to_five_minutes(
    client: Client, world: World
) -> None:
    db, settings = client.app[catalog.DATABASE], client.app[SETTINGS]
    owner, now = world.actors["learner"].phone, datetime.now(UTC)

    async def guess() -> int:
        """0 when the wrong password reached the check; else the seconds to wait first."""
        try:
            await accounts.login(
                db, settings, phone=owner, password="wrong", address="203.0.113.9", device="", now=now
            )
        except Unauthenticated:
            return 0
        except TooMany as exc:
            return int((exc.details or {})["retry_after_s"])
        raise AssertionError("a wrong password logged in")

    waits: list[int] = []
    failures = 0
    while failures < 20:  # a stranger sending each guess the moment the last wait ended
        wait_s = await guess()
        waits.append(wait_s)
        failures += wait_s == 0
        now += timedelta(seconds=wait_s)
    # Five free failures; then each try waits twice as long as the last, up to 5 minutes.
    assert [w for w in waits if w] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300, 300, 300]
    # The owner, arriving just after the last failure, waits no more than that, then gets in.
    with pytest.raises(TooMany) as refused:
        await accounts.login(
            db, settings, phone=owner, password=PASSWORD, address="192.0.2.1", device="", now=now
        )
    assert refused.value.details == {"retry_after_s": 300}
    later = now + timedelta(seconds=300)
    result = await accounts.login(
        db, settings, phone=owner, password=PASSWORD, address="192.0.2.1", device="", now=later
    )
    assert result.person["phone"] == owner


async def test_twelve_parallel_wrong_attempts_are_counted_one_after_another_and_the_thirteenth_waits(
    client: Client, world: World
) -> None:
    """Service level, one instant: each attempt sees the ones before it, so only the free five reach the
    password check (each counted) and the other seven are refused, as is a thirteenth."""
    db, settings = client.app[catalog.DATABASE], client.app[SETTINGS]
    owner, now = world.actors["learner"].phone, datetime.now(UTC)

    async def attempt(i: int) -> str:
        try:
            await accounts.login(
                db, settings, phone=owner, password="wrong", address=f"203.0.113.{i}", device="", now=now
            )
        except Unauthenticated:
            return "checked"
        except TooMany:
            return "refused"
        return "logged in"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(12)))
    assert sorted(outcomes) == ["checked"] * 5 + ["refused"] * 7
    assert await counted(client, throttle.LOGIN_PHONE, owner) == 5
    assert await attempt(13) == "refused"


async def test_twelve_parallel_wrong_attempts_over_http_cannot_all_reach_the_password_check(
    client: Client, world: World
) -> None:
    owner = world.actors["learner"].phone
    answers = await asyncio.gather(
        *(client.post("/api/auth/login", json={"phone": owner, "password": "wrong"}) for _ in range(12))
    )
    statuses = sorted(r.status for r in answers)
    checked = statuses.count(401)
    assert checked + statuses.count(429) == 12, statuses
    # The free five, and one more for each wait that ran out during the burst: never all twelve.
    assert 5 <= checked <= 7, statuses
    assert all(int(r.headers["Retry-After"]) > 0 for r in answers if r.status == 429)
    assert await counted(client, throttle.LOGIN_PHONE, owner) == checked


async def test_a_forwarded_address_counts_only_when_a_trusted_proxy_forwarded_it(
    aiohttp_client: AiohttpClient, settings: Settings, proxied: Client
) -> None:
    direct = await aiohttp_client(make_app(settings))  # the same database, nobody trusted
    for client in (direct, proxied):
        for i in range(20):  # twenty phones, each claiming to come from another address
            status, _, _ = await login(client, f"137000000{i:02d}", "guess", address=f"203.0.113.{i}")
            assert status == 401
    # Direct: the claims were ignored; all twenty came from the test client's own address.
    assert await counted(direct, throttle.LOGIN_ADDRESS, "127.0.0.1") == 20
    # Through the trusted proxy each address counted for itself.
    assert await counted(proxied, throttle.LOGIN_ADDRESS, "203.0.113.7") == 1
    for _ in range(3):  # three more, waiting as told: the address now waits 8 s
        await fail(direct, "13700000099", address="192.0.2.1")
    status, retry_after, _ = await login(direct, "13700000098", "guess", address="192.0.2.2")
    assert (status, int(retry_after) > 0) == (429, True)
    status, _, _ = await login(proxied, "13700000098", "guess", address="192.0.2.2")
    assert status == 401


async def test_a_device_cookie_of_another_account_or_a_forged_one_is_no_known_device(
    proxied: Client, world: World
) -> None:
    owner, other = world.actors["learner"].phone, world.actors["staff"].phone
    status, _, others_device = await login(proxied, other, PASSWORD, address="203.0.113.1")
    assert status == 200
    for _ in range(8):  # the owner's phone now waits 8 s
        await fail(proxied, owner, address="203.0.113.1")
    for device in (others_device, "forged.cookie", others_device[:-2] + "xx", ""):
        status, retry_after, _ = await login(proxied, owner, PASSWORD, address="203.0.113.1", device=device)
        assert status == 429, device
        assert 0 < int(retry_after) <= 8


async def test_the_known_device_cookie_is_http_only_and_sent_only_to_the_login_routes(
    client: Client, world: World
) -> None:
    resp = await client.post(
        "/api/auth/login", json={"phone": world.actors["learner"].phone, "password": PASSWORD}
    )
    cookie = resp.cookies["lectern_device"]
    assert cookie["httponly"] is True
    assert cookie["path"] == "/api/auth"
    assert cookie["samesite"] == "Strict"
    assert int(cookie["max-age"]) > 300 * 24 * 3600


async def test_registration_is_throttled_per_address_only_after_the_cheap_checks(proxied: Client) -> None:
    async def register(phone: str, address: str, password: str = "long enough") -> tuple[int, str]:
        resp = await proxied.post(
            "/api/auth/register",
            json={"phone": phone, "password": password, "name": "新人"},
            headers={"X-Forwarded-For": address},
        )
        return resp.status, resp.headers.get("Retry-After", "")

    # Refused by the cheap checks: not counted (and no argon2 ran for them).
    for _ in range(30):
        assert (await register("13800000001", "203.0.113.1", password="short"))[0] == 400
    for i in range(throttle.REGISTER_ADDRESS.free):
        assert (await register(f"1380000{i:04d}", "203.0.113.1"))[0] == 202
    status, retry_after = await register("13899999999", "203.0.113.1")
    assert status == 429
    assert 0 < int(retry_after) <= throttle.REGISTER_ADDRESS.first_delay_s
    async with proxied.app[catalog.DATABASE].sessions() as s:
        assert await s.scalar(select(func.count()).where(Person.phone == "13899999999")) == 0
    assert (await register("13899999999", "203.0.113.2"))[0] == 202  # another address is not slowed
    async with proxied.app[catalog.DATABASE].sessions() as s:
        assert await s.scalar(select(func.count()).where(Person.phone == "13899999999")) == 1
        assert await s.scalar(select(func.count()).select_from(Person)) == throttle.REGISTER_ADDRESS.free + 1
