"""Watching a replay as its page does, for tests that need a learner's progress: open a playback, send a
heartbeat at a position, wait until the catalog keeps it as the resume point."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.helpers import wait_until

Client = TestClient[web.Request, web.Application]


async def watched_to(
    client: Client, headers: dict[str, str], recording_id: str, position_s: float, angle: str = "camera"
) -> None:
    resp = await client.post(f"/api/replays/{recording_id}/playback", headers=headers)
    assert resp.status == 201, await resp.text()
    opened = await resp.json()
    beat = {
        "token": opened["token"],
        "seq": 0,
        "position_s": position_s,
        "rate": 1.0,
        "visible": True,
        "angle": angle,
    }
    resp = await client.post(f"/api/playback/{opened['client_id']}/heartbeats", json=beat, headers=headers)
    assert resp.status == 200, await resp.text()

    async def kept() -> bool:
        resp = await client.get(f"/api/replays/{recording_id}", headers=headers)
        replay: dict[str, Any] = await resp.json()
        progress = replay["progress"]
        return progress is not None and progress["position_s"] == position_s

    await wait_until(kept, timeout_s=10, message=f"the resume point {position_s} kept from the heartbeat")
