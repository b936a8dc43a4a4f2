"""Fixtures for the recorder integration tests (helpers live in recorder_testkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from recorder_testkit import SpyStore

from infra.objects_local import LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> SpyStore:
    root = tmp_path / "objects"
    return SpyStore(LocalObjectStore(root, "test-signing-key", "http://127.0.0.1/objects"), root)
