"""The issue's large-upload bar: a 2 GiB courseware file goes through the app's upload protocol into the
real S3 server (radosgw), and 512 MiB through the embedded store (whose parts stream through the app to
disk); the uploading client is killed mid-part halfway through, a new client resumes from the parts the
store lists and completes; the stored object is exactly the file (its size, and the ETag recomputed from
the generated parts); and the app server's memory stays flat throughout (its RSS sampled from /proc while
it runs as a real process).

The file is generated on the fly from a seed, chunk by chunk, by a client process of its own
(tests/integration/courseware_upload_client.py): nothing holds it in memory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from catalog import accounts
from catalog.db import Database, migrate
from catalog.domain import Role
from catalog.models import AuthSession, Person, RoleAssignment
from infra.objects import ObjectStore
from infra.objects_local import LocalObjectStore
from infra.objects_s3 import S3ObjectStore
from tests.integration.conftest import S3Service, remove_bucket, unique_bucket_name
from tests.integration.courseware_upload_client import CHUNK, chunk, part_md5
from tests.server import running_server

pytestmark = pytest.mark.integration

GiB = 1024**3
MiB = 1024**2
SEED = 20261206
CLIENT = Path(__file__).with_name("courseware_upload_client.py")
RSS_GROWTH_LIMIT = 100 * MiB


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class RssSampler:
    """Samples a process's resident memory every 50 ms on a thread of its own."""

    pid: int
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def seed_expert(url: str) -> tuple[str, str]:
    """An expert with a login session in the server's database: (cookie, CSRF token)."""
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    now = datetime.now(UTC)
    token, csrf = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        async with db.sessions.begin() as s:
            person = Person(name="大文件专家", phone="13900000001", password_hash="-", created_at=now)
            s.add(person)
            await s.flush()
            s.add(RoleAssignment(person_id=person.id, role=Role.EXPERT.value, org_id=None, created_at=now))
            s.add(
                AuthSession(
                    token_hash=accounts.token_hash(token),
                    person_id=person.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=2),
                )
            )
    finally:
        await db.close()
    return f"lectern_session={token}", csrf


@pytest.fixture
def bucket(s3_service: S3Service) -> Iterator[str]:
    name = unique_bucket_name()
    yield name
    remove_bucket(s3_service, name)


def client_process(base: str, cookie: str, csrf: str, upload_id: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CLIENT), base, cookie, csrf, str(upload_id), str(SEED), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )


def events(process: subprocess.Popen[str]) -> Iterator[dict[str, object]]:
    assert process.stdout is not None
    for line in process.stdout:
        yield json.loads(line)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("mode", "size"),
    [
        # The bar: 2 GiB into the real S3 server (the parts never touch the app).
        pytest.param("s3", 2 * GiB, id="s3-2GiB"),
        # The embedded store: every part streams through the app's /objects route to disk.
        pytest.param("embedded", 512 * MiB, id="embedded-512MiB"),
    ],
)
async def test_a_large_upload_cut_halfway_resumes_and_the_server_memory_stays_flat(
    tmp_path: Path, s3_service: S3Service, bucket: str, mode: str, size: int
) -> None:
    started_at = time.monotonic()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'lectern.db'}"
    cookie, csrf = await seed_expert(db_url)
    env = {"DATABASE_URL": db_url}
    if mode == "s3":
        env.update(
            {
                "S3_ENDPOINT": s3_service.endpoint,
                "S3_ACCESS_KEY": s3_service.access_key,
                "S3_SECRET_KEY": s3_service.secret_key,
                "S3_BUCKET": bucket,
            }
        )
    with running_server(tmp_path / "var", env) as server:
        pid = server.process.pid
        headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
        async with aiohttp.ClientSession() as http:
            body = {"file_name": "整学期课程.mp4", "size_bytes": size, "content_type": "video/mp4"}
            async with http.post(f"{server.url}/api/courseware/uploads", json=body, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
                upload = await resp.json()
        part_size, count = upload["part_size"], upload["part_count"]
        assert (part_size, count) == (16 * MiB, size // (16 * MiB))
        rss_before = rss_bytes(pid)

        with RssSampler(pid) as sampler:
            # First client: killed in the middle of a part once half the parts are stored.
            first = client_process(server.url, cookie, csrf, upload["id"], "--concurrency", "4")
            done_before_kill: set[int] = set()
            started: set[int] = set()
            await asyncio.to_thread(lambda: list(_until_half(first, count, done_before_kill, started)))
            first.send_signal(signal.SIGKILL)
            first.wait()
            assert first.stdout is not None
            first.stdout.close()
            rss_during = max(sampler.samples)
            cut_at = time.monotonic()

            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{server.url}/api/courseware/uploads/{upload['id']}", headers=headers) as resp,
            ):
                listed = await resp.json()
            stored = {p["number"] for p in listed["parts"]}
            # What the store holds: every part that was answered before the kill, none that was cut.
            assert done_before_kill <= stored <= started
            assert len(stored) < count
            assert listed["stored_bytes"] == len(stored) * part_size

            # Second client: sends only the rest, then completes.
            second = client_process(
                server.url, cookie, csrf, upload["id"], "--concurrency", "4", "--complete"
            )
            resumed = await asyncio.to_thread(lambda: list(events(second)))
            assert second.wait() == 0
            assert second.stdout is not None
            second.stdout.close()
        rss_after = rss_bytes(pid)
        finished_at = time.monotonic()

    sent_again = {int(str(e["started"])) for e in resumed if "started" in e}
    [found] = [set(cast(list[int], e["stored"])) for e in resumed if "stored" in e]
    # A part whose last bytes were already in the kernel's socket buffer when the client died may still
    # land after the listing above: the second client sees it stored and must not send it again.
    assert stored <= found <= started
    assert sent_again == set(range(1, count + 1)) - found
    [completed] = [e for e in resumed if "completed" in e]
    assert completed["status"] == 200, completed
    store: ObjectStore = (
        S3ObjectStore(s3_service.endpoint, s3_service.access_key, s3_service.secret_key, bucket)
        if mode == "s3"
        else LocalObjectStore(tmp_path / "var" / "objects", "unused", "http://127.0.0.1")
    )
    try:
        keys = [i.key for i in await store.list("courseware/")]
        assert len(keys) == 1
        info = await store.stat(keys[0])
    finally:
        await store.close()
    # The parts regenerated from the seed (in chunks) give the ETag the store must have: S3's of a
    # multipart object is the MD5 of the parts' MD5s and "-" their count; the embedded store's is the MD5.
    sizes = [min(part_size, size - (n - 1) * part_size) for n in range(1, count + 1)]
    if mode == "s3":
        md5s = await asyncio.to_thread(lambda: [part_md5(SEED, n, sizes[n - 1]) for n in range(1, count + 1)])
        expected = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest() + f"-{count}"
    else:
        expected = await asyncio.to_thread(whole_md5, sizes)
    assert (info.size, info.etag) == (size, expected)

    peak = max([rss_before, rss_during, *sampler.samples, rss_after])
    report = {
        "seconds_total": round(finished_at - started_at, 1),
        "seconds_to_cut": round(cut_at - started_at, 1),
        "rss_before_mib": round(rss_before / MiB, 1),
        "rss_peak_mib": round(peak / MiB, 1),
        "rss_after_mib": round(rss_after / MiB, 1),
        "parts_stored_at_cut": len(stored),
        "parts_resumed": len(sent_again),
    }
    print(f"\n{mode} upload of {size // MiB} MiB: {json.dumps(report)}")
    assert peak - rss_before < RSS_GROWTH_LIMIT, report


def whole_md5(sizes: list[int]) -> str:
    digest = hashlib.md5()
    for n, size in enumerate(sizes, start=1):
        for index, start in enumerate(range(0, size, CHUNK)):
            digest.update(chunk(SEED, n, index, min(CHUNK, size - start)))
    return digest.hexdigest()


def _until_half(
    process: subprocess.Popen[str], count: int, done: set[int], started: set[int]
) -> Iterator[dict[str, object]]:
    """Read the client's events until half the parts are done and another part is mid-way (its first
    chunk sent): the moment to cut it."""
    for event in events(process):
        if "started" in event:
            started.add(int(str(event["started"])))
        if "done" in event:
            done.add(int(str(event["done"])))
        yield event
        if "sending" in event and len(done) >= count // 2 and int(str(event["sending"])) not in done:
            return
    raise AssertionError("the client ended before it could be cut")
