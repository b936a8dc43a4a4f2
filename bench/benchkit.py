"""What the benchmarks share: the media-token key and session, free loopback ports, a process's CPU
time, the script re-run as a child process (server, publisher, viewers), and waiting for a server to
listen."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The benchmarks' servers sign and check media tokens with this key, for this session.
SECRET = "bench-secret-not-for-production"
SESSION = 1


def token(purpose: str, role: str = "expert", person_id: int = 1, ttl_s: float = 36_000) -> str:
    """A media token (whip/whep) for SESSION, valid longer than the longest benchmark (drift: 30 min)."""
    from infra.tokens import Claims, sign  # the scripts put the project root on sys.path first

    return sign(SECRET, purpose, Claims(person_id, f"session:{SESSION}", role, time.time() + ttl_s, {}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    """`script` (a benchmark's own file) run again as a child with `args`, stdout piped, unbuffered."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(Path(script).resolve()), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a port that is coming up; a benchmark, not a test
    raise RuntimeError(f"server did not listen on {port}")
