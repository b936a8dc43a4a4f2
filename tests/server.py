"""Lectern as a subprocess on a free loopback port: the server under test for browser and deploy tests.

`running_server(data_dir, env)` starts `python -m streaming`, polls /healthz until it answers and, if it
never does, fails with the server's own log output. On the way out it sends SIGTERM and waits; a server
that does not stop cleanly fails the test with its log too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.settings import env_names
from tests.helpers import free_port, wait_until_sync

REPO = Path(__file__).resolve().parents[1]
TEST_SECRET_KEY = "test-secret-key-not-for-production-0123456789"


class ServerFailed(AssertionError):
    """The server did not start, or did not stop cleanly; the message carries its log."""


@dataclass
class LecternServer:
    url: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return -int(signal.SIGKILL)
    return int(process.returncode)


@contextmanager
def running_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    start_timeout_s: float = 30.0,
    stop_timeout_s: float = 10.0,
) -> Iterator[LecternServer]:
    """Run `python -m streaming` on 127.0.0.1 with its data in `data_dir` and settings from `env`.

    Settings from the surrounding environment (DATABASE_URL, ...) are dropped so a test gets exactly
    the server it asks for: the embedded default plus `env`.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    settings_names = env_names()
    child_env = {k: v for k, v in os.environ.items() if k not in settings_names}
    child_env.update(
        {
            "LECTERN_HOST": "127.0.0.1",
            "LECTERN_PORT": str(port),
            "LECTERN_DATA_DIR": str(data_dir),
            "LECTERN_SECRET_KEY": TEST_SECRET_KEY,
            "LECTERN_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    child_env.update(env or {})
    log_path = data_dir / "server.log"
    url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: a chatty server can never block on a full pipe nobody reads.
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "streaming"],
            cwd=REPO,
            env=child_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = LecternServer(url=url, port=port, data_dir=data_dir, log_path=log_path, process=process)

    def ready() -> bool:
        if process.poll() is not None:
            raise ServerFailed(
                f"lectern exited with {process.returncode} before answering /healthz; log:\n"
                f"{server.log_text()}"
            )
        return _healthy(url)

    try:
        wait_until_sync(ready, timeout_s=start_timeout_s, interval_s=0.1, message=f"{url}/healthz")
    except ServerFailed:
        _stop(process, stop_timeout_s)
        raise
    except AssertionError as exc:
        _stop(process, stop_timeout_s)
        raise ServerFailed(f"{exc}; lectern log:\n{server.log_text()}") from None
    except BaseException:
        _stop(process, stop_timeout_s)
        raise
    try:
        yield server
    finally:
        code = _stop(process, stop_timeout_s)
    if code != 0:
        raise ServerFailed(f"lectern exited with {code} after SIGTERM; log:\n{server.log_text()}")
