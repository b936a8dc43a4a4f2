"""The composed app: health, readiness naming what is down, metrics, request ids, the landing page."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import catalog
from infra.appkeys import OUTBOX, READINESS
from infra.readiness import Degraded
from infra.settings import Settings
from streaming.app import create_app
from tests.helpers import free_port, service_env, wait_until


async def _client(aiohttp_client: Any, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    await catalog.migrate_async(settings.effective_database_url)
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def test_healthz_answers_while_the_process_lives(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_reports_each_dependency_in_embedded_mode(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "objects": "ok",
        "bus": "ok",
        "database": "ok",
        "outbox": "ok",
        "recordings": "ok",
    }


async def test_readyz_shows_a_degraded_part_but_stays_ready(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    client = await _client(aiohttp_client, embedded_settings)

    async def degraded() -> None:
        raise Degraded("outbox: 3 events wait for the bus, the oldest for 12 s")

    client.app[READINESS]["outbox"] = degraded
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["outbox"] == "degraded: outbox: 3 events wait for the bus, the oldest for 12 s"
    assert body["checks"]["database"] == "ok"


async def test_metrics_show_the_outbox_depth_and_the_age_of_its_oldest_event(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    await client.app[OUTBOX].publish("sessions", "session.started", {"session_id": 1})
    await wait_until(lambda: client.app[OUTBOX].depth == 0, message="delivered to the in-process bus")
    text = await (await client.get("/metrics")).text()
    assert "lectern_outbox_events 0.0" in text
    assert "lectern_outbox_oldest_age_seconds 0.0" in text
    assert "lectern_outbox_delivered 1.0" in text
    assert "lectern_outbox_refused 0.0" in text


async def test_readyz_names_an_unreachable_bus(aiohttp_client: Any, embedded_settings: Settings) -> None:
    settings = replace(embedded_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await _client(aiohttp_client, settings)
    resp = await client.get("/readyz")
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert error["code"] == "unavailable"
    assert "bus" in error["message"]
    assert error["details"]["checks"]["bus"] != "ok"
    assert error["details"]["checks"]["database"] == "ok"


async def test_readyz_names_an_unreachable_object_store(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    settings = replace(
        embedded_settings, s3_endpoint=f"127.0.0.1:{free_port()}", s3_access_key="a", s3_secret_key="b"
    )
    client = await _client(aiohttp_client, settings)
    resp = await client.get("/readyz")
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert "objects" in error["message"]
    assert error["details"]["checks"]["bus"] == "ok"


async def test_readyz_names_an_unreachable_database(aiohttp_client: Any, embedded_settings: Settings) -> None:
    settings = replace(embedded_settings, database_url=f"postgresql://app@127.0.0.1:{free_port()}/nope")
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["error"]["details"]["checks"]["database"] != "ok"


@pytest.mark.integration
async def test_readyz_is_ready_on_real_services(aiohttp_client: Any, embedded_settings: Settings) -> None:
    settings = replace(
        embedded_settings,
        database_url=service_env("TEST_POSTGRES_URL"),
        redis_url=service_env("TEST_REDIS_URL"),
        s3_endpoint=service_env("TEST_S3_ENDPOINT"),
        s3_access_key=service_env("TEST_S3_ACCESS_KEY"),
        s3_secret_key=service_env("TEST_S3_SECRET_KEY"),
        s3_bucket="lectern-readyz",
    )
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert set((await resp.json())["checks"].values()) == {"ok"}


async def test_metrics_count_requests_by_route_and_status(
    aiohttp_client: Any, embedded_settings: Settings
) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/no-such-page")
    text = await (await client.get("/metrics")).text()
    assert 'lectern_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'status="404"' in text
    assert "lectern_http_request_seconds_bucket" in text


async def test_every_response_carries_a_request_id(aiohttp_client: Any, embedded_settings: Settings) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert resp.headers["X-Request-Id"] == "abc123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "x" * 500})
    assert resp.headers["X-Request-Id"] != "x" * 500
    assert len(resp.headers["X-Request-Id"]) == 16


async def test_landing_page_is_chinese_html(aiohttp_client: Any, embedded_settings: Settings) -> None:
    client = await _client(aiohttp_client, embedded_settings)
    resp = await client.get("/")
    assert resp.status == 200
    text = await resp.text()
    assert 'lang="zh-CN"' in text
    assert "继续教育" in text
    assert (await client.get("/static/style.css")).status == 200
