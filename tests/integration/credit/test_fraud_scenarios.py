"""Fraud scenarios (DOMAIN §4) played end to end against the whole running app: scripted clients talk to
the real HTTP API, room channel and live media; the catalog's consumer stores the evidence and its
settler turns it into ledger entries and flags. In every test an honest learner of the same lecture gets
full credit and no flag, while the cheat gets no credit (or only what was really watched) and, where the
evidence says so, a flag on the provider's review list. Everything is read back through the API:
`GET /api/me/credits` as each learner, `GET /api/fraud-flags` as the provider's administrator.

The policy is stored through the API as an administrator does, short enough for a test lecture to earn
visible 学时: a heartbeat every second (replays) or two (live), one minute per 学时, 0.1 rounding."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from catalog import accounts
from catalog.models import AuthSession
from catalog.playback import Grant, sign_grant
from tests.helpers import wait_until
from tests.integration.catalog.conftest import Actor
from tests.integration.credit.fraud_support import (
    ChannelClient,
    HlsClient,
    Lectern,
    Pacer,
    ReplayClient,
    concurrently,
)
from tests.integration.live.peers import WatchingPeer, sdp_headers

REPLAY_S = 15.0  # 0.25 minutes of media: 0.2 学时 at one minute per 学时, floored to 0.1
SHORT_POLICY = {"minutes_per_xueshi": 1, "rounding_unit": "0.1"}


def xs(entry: dict[str, Any]) -> Decimal:
    return Decimal(entry["xueshi"])


async def replay_world(lectern: Lectern) -> tuple[int, str, Actor]:
    """The short policy (a heartbeat a second), a held lecture with a 15 s replay, an honest learner."""
    await lectern.store_policy(heartbeat_period_s=1, **SHORT_POLICY)
    session_id, recording_id = await lectern.ended_session_with_replay(REPLAY_S)
    return session_id, recording_id, await lectern.learner("honest")


async def watch_honestly(lectern: Lectern, actor: Actor, recording_id: str) -> ReplayClient:
    replay = await ReplayClient(lectern.client, actor, recording_id).open()
    assert replay.opened["first_viewing"] is True
    await replay.play(REPLAY_S)
    return replay


async def assert_full_replay_credit(lectern: Lectern, actor: Actor, session_id: int) -> dict[str, Any]:
    entry = await lectern.settled_entry(actor, session_id)
    assert entry["kind"] == "replay"
    assert entry["status"] == "pending"
    assert entry["coverage"] >= 0.95, entry
    assert xs(entry) == Decimal("0.20"), entry
    assert await lectern.codes(actor) == set()
    return entry


async def test_skipping_to_the_end_on_a_first_viewing_earns_nothing_and_is_flagged(lectern: Lectern) -> None:
    session_id, recording_id, honest = await replay_world(lectern)
    skipper = await lectern.learner("skipper")

    async def skip_to_the_end() -> None:
        replay = await ReplayClient(lectern.client, skipper, recording_id).open()
        await replay.beat(0.0)
        await replay.beat(REPLAY_S - 1)  # drags the playhead to the end at once
        pacer = Pacer(1.0)
        for _ in range(3):  # and lets the last second play out, as if finished
            await pacer.tick()
            await replay.beat(min(REPLAY_S, REPLAY_S - 1 + pacer.elapsed()))

    await concurrently(watch_honestly(lectern, honest, recording_id), skip_to_the_end())

    await assert_full_replay_credit(lectern, honest, session_id)
    flag = await lectern.flag(skipper, "forward_seek")
    assert flag["session_id"] == session_id
    assert flag["evidence"], flag
    assert await lectern.my_entries(skipper, session_id) == []  # incomplete: nothing credited


async def test_three_times_speed_is_not_credited_beyond_real_time(lectern: Lectern) -> None:
    session_id, recording_id, honest = await replay_world(lectern)
    fast, liar = await lectern.learner("fast"), await lectern.learner("liar")

    async def at_three_times(actor: Actor, reported_rate: float) -> None:
        replay = await ReplayClient(lectern.client, actor, recording_id).open()
        await replay.play(REPLAY_S, speed=3.0, rate=reported_rate)

    await concurrently(
        watch_honestly(lectern, honest, recording_id),
        at_three_times(fast, 3.0),  # the player says it plays at 3×
        at_three_times(liar, 1.0),  # a script says 1× while the position runs at 3×
    )

    honest_entry = await assert_full_replay_credit(lectern, honest, session_id)
    flag = await lectern.flag(fast, "too_fast")
    assert flag["evidence"], flag
    assert await lectern.my_entries(fast, session_id) == []
    # The liar spent 5 s of wall time on 15 s of media: refused as too fast whatever rate it reports
    # (the tolerance is a jitter budget, spent after one pair), so at most 5 s (1×) is credited, 0 学时.
    assert (await lectern.flag(liar, "too_fast"))["evidence"]
    for entry in await lectern.my_entries(liar, session_id):
        assert xs(entry) == 0, entry
        assert entry["minutes"] <= 5 / 60 + 0.01, entry
    assert honest_entry["minutes"] > 0


async def second_login(lectern: Lectern, actor: Actor) -> Actor:
    """The same person logged in on another device: another session cookie and CSRF token."""
    now = datetime.now(UTC)
    token, csrf = f"token-{uuid.uuid4().hex}", f"csrf-{uuid.uuid4().hex}"
    async with lectern.world.db.sessions.begin() as s:
        s.add(
            AuthSession(
                token_hash=accounts.token_hash(token),
                person_id=actor.person_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    return Actor(actor.person_id, actor.phone, {"Cookie": f"lectern_session={token}", "X-CSRF-Token": csrf})


def tampered(token: str) -> str:
    """The token with its claims edited (an hour-long duration) and the signature kept."""
    payload, _, mac = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["x"]["d"] = 3600.0
    edited = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return f"{base64.urlsafe_b64encode(edited).rstrip(b'=').decode()}.{mac}"


async def test_forged_heartbeats_are_refused_and_store_nothing(lectern: Lectern) -> None:
    session_id, recording_id, honest = await replay_world(lectern)
    forger = await lectern.learner("forger")
    mine = await ReplayClient(lectern.client, forger, recording_id).open()
    grant = Grant(
        client_id=mine.client_id,
        person_id=forger.person_id,
        recording_id=recording_id,
        duration_s=REPLAY_S,
        angles=("camera",),
        seed="x",
        checks_per_45_min=0,
        check_window_s=60,
        heartbeat_period_s=3600,  # one heartbeat an hour would cover everything
        binding="whatever",
        expires_at=time.time() + 3600,
    )

    async def forge() -> None:
        pacer = Pacer(1.0)
        honest_client: ReplayClient | None = None
        while pacer.elapsed() < REPLAY_S:
            position = min(REPLAY_S, pacer.elapsed() * 3)
            attempts: list[tuple[dict[str, Any], int]] = [
                ({"token": None}, 400),  # no token
                ({"token": "not-a-token"}, 401),
                ({"token": sign_grant("a guessed secret key", grant)}, 401),  # signed with another key
                ({"token": tampered(mine.token)}, 401),  # claims edited, signature kept
                ({"headers": {"Cookie": forger.headers["Cookie"]}}, 403),  # no CSRF token
                ({"headers": {}}, 401),  # no login at all
            ]
            if honest_client is None:
                honest_client = next(iter(clients), None)
            if honest_client is not None:
                attempts += [
                    ({"client_id": honest_client.client_id}, 403),  # my token on the honest client
                    ({"token": honest_client.token, "client_id": honest_client.client_id}, 403),  # theirs
                ]
            for changes, expected in attempts:
                kwargs: dict[str, Any] = {"seq": pacer.ticks, **changes}
                if kwargs.get("token", "") is None:
                    kwargs.pop("token")
                    status, answer = await send_without_token(lectern, mine, position)
                else:
                    status, answer = await mine.send(position, **kwargs)
                assert status == expected, (changes, answer)
                assert set(answer) == {"error"}, answer
            await pacer.tick()

    clients: list[ReplayClient] = []

    async def honest_watch() -> None:
        replay = await ReplayClient(lectern.client, honest, recording_id).open()
        clients.append(replay)
        await replay.play(REPLAY_S)

    await concurrently(honest_watch(), forge())

    await assert_full_replay_credit(lectern, honest, session_id)
    row = await lectern.session_row(session_id, forger)
    assert (row["credited_minutes"], row["xueshi"], row["entries"]) == (0, "0", [])
    resp = await lectern.client.get(f"/api/replays/{recording_id}", headers=forger.headers)
    assert (await resp.json())["progress"] is None  # not one forged heartbeat was kept
    assert await lectern.codes(forger) == set()


async def send_without_token(lectern: Lectern, replay: ReplayClient, position: float) -> tuple[int, Any]:
    body = {"seq": 0, "position_s": position, "rate": 1.0, "visible": True, "angle": "camera"}
    resp = await lectern.client.post(
        f"/api/playback/{replay.client_id}/heartbeats", json=body, headers=replay.actor.headers
    )
    return resp.status, await resp.json()


async def test_replayed_heartbeats_add_nothing_and_are_flagged(lectern: Lectern) -> None:
    session_id, recording_id, honest = await replay_world(lectern)
    replayer = await lectern.learner("replayer")

    async def replay_heartbeats() -> None:
        replay = await ReplayClient(lectern.client, replayer, recording_id).open()
        await replay.play(6.0)  # watches the first 6 s honestly (sequence numbers 0..6 or so)
        last = replay.seq
        # Sends earlier sequence numbers again claiming later media, to fill the rest without watching.
        for n, seq in enumerate(range(last - 3, last + 1)):
            await replay.beat(9.0 + 2 * n, seq=seq)
        # Then a capture from further on, and earlier numbers after it (sequence going backwards).
        await replay.beat(REPLAY_S, seq=last + 20)
        for n, seq in enumerate(range(last + 5, last + 10)):
            await replay.beat(10.0 + n, seq=seq)

    await concurrently(watch_honestly(lectern, honest, recording_id), replay_heartbeats())

    await assert_full_replay_credit(lectern, honest, session_id)
    flag = await lectern.flag(replayer, "forged_or_replayed")
    assert flag["severity"] == "high"
    assert await lectern.my_entries(replayer, session_id) == []  # 6 s of 15 watched: incomplete


async def test_two_tabs_watching_two_halves_at_once_earn_nothing(lectern: Lectern) -> None:
    """A second tab supersedes the first (R18): the first tab's heartbeats are refused from then on, and
    the second tab, starting mid-way on a first viewing, is a forward seek."""
    session_id, recording_id, honest = await replay_world(lectern)
    tabs = await lectern.learner("tabs")
    first = await ReplayClient(lectern.client, tabs, recording_id).open()
    second = await ReplayClient(lectern.client, tabs, recording_id).open()

    async def play_first_half() -> None:
        pacer = Pacer(1.0)
        while pacer.elapsed() < REPLAY_S / 2:
            status, answer = await first.send(pacer.elapsed())
            assert status == 409, answer
            assert answer["error"]["code"] == "superseded"
            assert answer["error"]["details"]["superseded_by"] == second.client_id
            await pacer.tick()

    await concurrently(
        watch_honestly(lectern, honest, recording_id),
        play_first_half(),
        second.play(REPLAY_S, start_s=REPLAY_S / 2),
    )

    await assert_full_replay_credit(lectern, honest, session_id)
    flag = await lectern.flag(tabs, "forward_seek")
    assert flag["session_id"] == session_id
    assert await lectern.my_entries(tabs, session_id) == []


async def test_two_devices_in_turn_are_counted_once(lectern: Lectern) -> None:
    """A learner watches on the laptop, then picks up on the phone (another login) where the laptop was:
    the laptop is superseded and refused from then on, and the replay is credited once, not twice."""
    session_id, recording_id, honest = await replay_world(lectern)
    laptop_login = await lectern.learner("two-devices")
    phone_login = await second_login(lectern, laptop_login)
    laptop = await ReplayClient(lectern.client, laptop_login, recording_id).open()
    refused: list[dict[str, Any]] = []
    handed_over = False

    async def on_the_laptop() -> None:
        pacer = Pacer(1.0)
        while pacer.elapsed() < REPLAY_S:  # keeps playing on, unaware
            status, answer = await laptop.send(min(REPLAY_S, pacer.elapsed()))
            if status == 409:
                refused.append(answer)
            else:
                assert status == 200, answer
                assert not handed_over
            await pacer.tick()

    async def on_the_phone() -> None:
        nonlocal handed_over

        async def resume_point() -> float:
            resp = await lectern.client.get(f"/api/replays/{recording_id}", headers=phone_login.headers)
            progress = (await resp.json())["progress"]
            return float(progress["position_s"]) if progress else 0.0

        # The phone is picked up once the laptop is 5 s in (and the catalog has kept where it is).
        await wait_until(lambda: laptop.seq >= 5, timeout_s=15, interval_s=0.1, message="the laptop 5 s in")
        await wait_until(resume_point, timeout_s=10, message="the laptop's resume point kept")
        phone = await ReplayClient(lectern.client, phone_login, recording_id).open()
        handed_over = True
        assert phone.opened["position_s"] > 0, phone.opened
        await phone.play(REPLAY_S, start_s=float(phone.opened["position_s"]))

    await concurrently(watch_honestly(lectern, honest, recording_id), on_the_laptop(), on_the_phone())

    honest_entry = await assert_full_replay_credit(lectern, honest, session_id)
    assert refused, "the laptop was never told it was superseded"
    assert {a["error"]["code"] for a in refused} == {"superseded"}
    entry = await lectern.settled_entry(laptop_login, session_id)
    assert entry["kind"] == "replay"
    assert xs(entry) == xs(honest_entry)  # once: the union of both devices, not their sum
    assert entry["minutes"] <= REPLAY_S / 60 + 1e-6
    assert len(await lectern.my_entries(laptop_login, session_id)) == 1


# -- live ------------------------------------------------------------------------------------------------

LIVE_POLICY = {
    "heartbeat_period_s": 2,
    "live_presence_threshold": 0.7,
    "live_below_threshold": "pro_rata",  # below the threshold: only the minutes present
    **SHORT_POLICY,
}
LECTURE_FRAMES = 20 * 30  # the lecture runs until the honest viewer got 20 s of video (30 fps)


async def test_live_over_webrtc_hidden_tab_auto_confirm_and_two_devices(
    lectern: Lectern, peers: list[Any]
) -> None:
    """Real aiortc viewers (delivery confirmed by their receiver reports) and live pages on the room
    channel. The honest learner watches, keeps the page visible and answers the check after a second and a
    half; the hider hides the tab after a few seconds; a script answers the check the instant it arrives
    (with the right nonce); a learner watches on two devices at once."""
    await lectern.store_policy(**LIVE_POLICY)
    session_id = await lectern.session_soon()
    honest, hider = await lectern.learner("honest"), await lectern.learner("hider")
    script, both = await lectern.learner("script"), await lectern.learner("two-devices")
    expert = lectern.world.actors["expert"]

    # Pages open before the lecture starts (to wait), then everyone watches once it is live.
    pages = {
        a.phone: await ChannelClient.join(lectern, a, session_id, reaction_s=0.0 if a is script else 1.5)
        for a in (honest, hider, script, both)
    }
    assert {p.period_s for p in pages.values()} == {2.0}  # the stored policy's period
    robot, whip = await lectern.go_live(peers, session_id)
    viewers = await concurrently(
        *(lectern.watch(peers, a, session_id) for a in (honest, hider, script, both))
    )
    viewers.append(await lectern.watch(peers, both, session_id))  # the second device

    async def delivery_confirmed() -> bool:
        """The catalog's view: every learner's video is acknowledged by their receiver reports."""
        resp = await lectern.client.get(
            f"/api/sessions/{session_id}/attendance", headers=lectern.provider_admin.headers
        )
        live = {row["person_id"]: row for row in (await resp.json())["live"]}
        watching = [a.person_id in live and live[a.person_id]["watching_now"] for a in learners]
        return all(watching) and live[both.person_id]["connections"] == 2

    learners = (honest, hider, script, both)
    await wait_until(delivery_confirmed, timeout_s=20, interval_s=0.2, message="delivery confirmed")

    # A presence check, asked by the expert on the channel; every learner is prompted with their nonce.
    studio = await ChannelClient.join(lectern, expert, session_id)
    await studio.ws.send_json({"type": "presence_check", "window_s": 30})
    prompted = [pages[a.phone] for a in (honest, hider, script, both)]
    await wait_until(lambda: all(p.answers for p in prompted), timeout_s=15, message="every answer acked")
    assert all(p.answers[0]["type"] == "presence_ack" for p in prompted), [p.answers for p in prompted]
    # Half-way through (10 s of video delivered), the hider switches to another tab until the end.
    await wait_until(lambda: viewers[0].count() >= LECTURE_FRAMES // 2, timeout_s=30, message="10 s in")
    await pages[hider.phone].report_visibility(False)

    await wait_until(lambda: viewers[0].count() >= LECTURE_FRAMES, timeout_s=60, message="a 20 s lecture")
    await lectern.end(robot, whip, session_id)
    for page in (*pages.values(), studio):
        await page.close()

    entry = await lectern.settled_entry(honest, session_id)
    window_min = entry["window_s"] / 60
    assert entry["kind"] == "live"
    assert entry["ratio"] >= 0.7, entry
    assert (entry["checks_answered"], entry["checks_total"], entry["fraction"]) == (1, 1, 1.0)
    assert entry["minutes"] == pytest.approx(window_min, abs=0.05)  # full credit: the window's minutes
    assert xs(entry) >= Decimal("0.3"), entry
    assert await lectern.codes(honest) == set()

    hidden = await lectern.settled_entry(hider, session_id)
    assert hidden["ratio"] < 0.6, hidden  # the hidden time is not counted ...
    assert hidden["present_s"] > 0, hidden
    # ... only what was seen (pro rata below the threshold; the API shows minutes to 0.1)
    assert hidden["minutes"] == pytest.approx(round(hidden["present_s"] / 60, 1))
    assert xs(hidden) < xs(entry)
    assert await lectern.codes(hider) == set()  # hiding a tab is no fraud: it just earns nothing

    scripted = await lectern.settled_entry(script, session_id)
    assert (scripted["checks_answered"], scripted["checks_total"], scripted["fraction"]) == (0, 1, 0.0)
    assert xs(scripted) == 0
    flag = await lectern.flag(script, "auto_confirm")
    assert flag["severity"] == "high"
    assert len(flag["evidence"]["check_ids"]) == 1, flag
    assert all(latency < 800 for latency in flag["evidence"]["latency_ms"]), flag

    twice = await lectern.settled_entry(both, session_id)
    assert twice["minutes"] <= window_min + 1e-6  # counted once, not per device
    assert xs(twice) == xs(entry)
    devices = await lectern.flag(both, "two_devices")
    assert devices["evidence"]["concurrent_s"] > 2 * 2, devices
    assert len(devices["evidence"]["peers"]) == 2


@pytest.mark.seat_limit(0)
async def test_overflow_hls_after_the_end_and_heartbeats_without_media(
    lectern: Lectern, peers: list[Any]
) -> None:
    """Overflow viewers (no interactive seat left): the honest one fetches the live playlist's segments and
    beats every period; a late one joins half-way and keeps beating after the lecture ended (refused with
    409, nothing credited after the end); a script beats all along without fetching any media."""
    await lectern.store_policy(**LIVE_POLICY)
    session_id = await lectern.session_soon()
    honest, late, script = [await lectern.learner(k) for k in ("honest", "late", "script")]
    robot, whip = await lectern.go_live(peers, session_id)
    seatless = WatchingPeer()
    peers.append(seatless)
    resp = await lectern.client.post(
        f"/whep/sessions/{session_id}",
        data=await seatless.offer(),
        headers=sdp_headers(await lectern.token(honest, "whep", session_id)),
    )
    refused = await resp.json()
    assert (resp.status, refused["error"]["code"]) == (409, "room_full"), refused
    playlist = refused["error"]["details"]["hls_url"]
    clients = {a.person_id: await HlsClient.open(lectern, a, session_id) for a in (honest, late, script)}
    state = {"ending": False}
    statuses: dict[int, list[int]] = {a.person_id: [] for a in (honest, late, script)}
    after_end: list[tuple[int, dict[str, Any]]] = []

    async def player(actor: Actor, *, fetch: bool, beyond_end: int = 0) -> None:
        me = clients[actor.person_id]
        pacer = Pacer(2.0)
        while True:
            if fetch:
                await me.fetch_new_segments(playlist)
            status, answer = await me.beat()
            statuses[actor.person_id].append(status)
            if status != 202:
                assert state["ending"], answer  # refused only once the lecture is ending
                assert answer["error"]["code"] == "outside_live_window", answer
                break
            await pacer.tick()
        for _ in range(beyond_end):  # the late one keeps going, as if the lecture ran on
            await pacer.tick()
            after_end.append(await me.beat())

    async def join_late() -> None:
        honest_client = clients[honest.person_id]
        await wait_until(lambda: len(honest_client.fetched) >= 10, timeout_s=30, message="10 s in")
        await player(late, fetch=True, beyond_end=3)

    async def lecture() -> None:
        honest_client = clients[honest.person_id]
        await wait_until(lambda: len(honest_client.fetched) >= 20, timeout_s=60, message="a 20 s lecture")
        state["ending"] = True
        await lectern.end(robot, whip, session_id)

    try:
        await concurrently(player(honest, fetch=True), player(script, fetch=False), join_late(), lecture())
    finally:
        for client in clients.values():
            await client.close()
    assert [(code, answer["error"]["code"]) for code, answer in after_end] == [
        (409, "outside_live_window")
    ] * 3

    entry = await lectern.settled_entry(honest, session_id)
    window_min = entry["window_s"] / 60
    assert entry["kind"] == "hls"
    assert entry["ratio"] >= 0.7, entry
    assert entry["minutes"] == pytest.approx(window_min, abs=0.05)
    assert xs(entry) >= Decimal("0.3"), entry
    assert await lectern.codes(honest) == set()

    latecomer = await lectern.settled_entry(late, session_id)
    assert latecomer["present_s"] <= entry["window_s"] * 0.6, latecomer  # only the time inside the window
    assert latecomer["minutes"] == pytest.approx(round(latecomer["present_s"] / 60, 1))
    assert xs(latecomer) < xs(entry)

    scripted = await lectern.settled_entry(script, session_id)
    assert scripted["present_s"] == 0, scripted
    assert xs(scripted) == 0, scripted
    flag = await lectern.flag(script, "uncorroborated_heartbeats")
    assert flag["evidence"], flag
