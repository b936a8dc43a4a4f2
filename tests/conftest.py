"""Fixtures shared by all tiers. Real services come from the environment `make test` prepares:
TEST_POSTGRES_URL, TEST_REDIS_URL, TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """Settings for the embedded default (SQLite, local objects, in-process bus) in a temp dir."""
    return Settings(data_dir=tmp_path / "var", secret_key="test-secret-key-not-for-production", port=0)
