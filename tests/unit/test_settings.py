"""Settings are read from the environment once, validated, and never leak secrets into logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings, SettingsError, env_names, from_env, with_secret_key


def test_empty_environment_gives_the_embedded_default() -> None:
    s = from_env({})
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("var/lectern.db")
    assert not s.uses_s3
    assert s.redis_url == ""
    assert s.objects_dir == Path("var/objects")


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"LECTERN_PORT": "9000"}, "port", 9000),
        ({"S3_SECURE": "true"}, "s3_secure", True),
        ({"S3_SECURE": "0"}, "s3_secure", False),
        ({"LECTERN_SEGMENT_DURATION_S": "4"}, "segment_duration_s", 4.0),
        (
            {
                "LECTERN_ICE_SERVERS": "stun:turn.example:3478, turn:turn.example:3478",
                "LECTERN_TURN_SECRET": "s",
            },
            "ice_servers",
            ("stun:turn.example:3478", "turn:turn.example:3478"),
        ),
        ({"LECTERN_DATA_DIR": "/srv/lectern"}, "data_dir", Path("/srv/lectern")),
    ],
    ids=["int", "bool-true", "bool-false", "float", "tuple", "path"],
)
def test_values_are_parsed_to_their_types(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"LECTERN_PORT": "eighty"}, "LECTERN_PORT"),
        ({"LECTERN_PORT": "70000"}, "LECTERN_PORT"),
        ({"S3_SECURE": "maybe"}, "S3_SECURE"),
        ({"LECTERN_PROT": "1"}, "LECTERN_PROT"),
        ({"S3_ENDPOINT": "minio:9000"}, "S3_ACCESS_KEY"),
    ],
    ids=["not-a-number", "out-of-range", "not-a-bool", "typo-in-name", "s3-without-keys"],
)
def test_bad_settings_are_refused_naming_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        from_env(env)


def test_postgres_urls_get_the_async_driver() -> None:
    s = from_env({"DATABASE_URL": "postgresql://app:pw@db:5432/lectern"})
    assert s.effective_database_url == "postgresql+asyncpg://app:pw@db:5432/lectern"
    assert from_env({"DATABASE_URL": "postgres://db/x"}).effective_database_url == "postgresql+asyncpg://db/x"


def test_redacted_settings_hide_secrets_and_url_passwords() -> None:
    s = Settings(
        database_url="postgresql://app:hunter2@db/lectern",
        s3_secret_key="s3cret",
        secret_key="signing",
        redis_url="redis://:pw@redis:6379/0",
    )
    text = repr(s.redacted())
    for secret in ("hunter2", "s3cret", "signing", ":pw@"):
        assert secret not in text
    assert "db/lectern" in text


def test_every_setting_has_a_distinct_environment_variable() -> None:
    names = env_names()
    assert len(names) == len(set(names.values()))
    assert "DATABASE_URL" in names
    assert "REDIS_URL" in names
    assert "S3_ENDPOINT" in names


def test_embedded_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = with_secret_key(Settings(data_dir=tmp_path))
    second = with_secret_key(Settings(data_dir=tmp_path))
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert with_secret_key(Settings(data_dir=tmp_path, secret_key="given")).secret_key == "given"
