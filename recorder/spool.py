"""The local spool: accounting for bytes written but not yet in the object store, against a limit; and
removing a recording's folder once it is finalized."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path


def remove_recording_dir(path: Path) -> None:
    """Remove a finalized recording's spool folder (`spool/{session}/{recording}`) and its session's
    folder once that is empty, so a busy server's spool does not fill with empty folders."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # another recording of the session is still in it
        path.parent.rmdir()


@dataclass
class SpoolAccount:
    """Tracks pending bytes per key. `admit` says whether one more file fits; the caller logs the
    transitions `admit` reports (first time over the limit, back under it) so a long outage warns once."""

    limit_bytes: int
    pending: dict[str, int] = field(default_factory=dict)
    dropped_files: int = 0
    over_limit: bool = False

    @property
    def pending_bytes(self) -> int:
        return sum(self.pending.values())

    def admit(self, key: str, size: int) -> bool:
        """Reserve `size` bytes for `key`; False (and counted as dropped) when the spool would overflow."""
        if self.pending_bytes + size > self.limit_bytes:
            self.dropped_files += 1
            self.over_limit = True
            return False
        self.pending[key] = self.pending.get(key, 0) + size
        return True

    def uploaded(self, key: str) -> bool:
        """Release `key`; True when this brought the spool back under its limit after an overflow."""
        self.pending.pop(key, None)
        if self.over_limit and self.pending_bytes < self.limit_bytes // 2:
            self.over_limit = False
            return True
        return False
