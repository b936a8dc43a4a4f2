"""Lectern's settings: one frozen dataclass, read from the environment once, at the entry point.

Every field is documented in docs/operations.md; tests/unit/test_docs.py keeps that page complete.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from infra import client_address, ice


class SettingsError(ValueError):
    """A setting from the environment cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"env": "LECTERN_HOST"})
    port: int = field(default=8080, metadata={"env": "LECTERN_PORT"})
    data_dir: Path = field(default=Path("var"), metadata={"env": "LECTERN_DATA_DIR"})
    database_url: str = field(default="", metadata={"env": "DATABASE_URL"})
    database_pool_size: int = field(default=4, metadata={"env": "LECTERN_DATABASE_POOL_SIZE"})
    redis_url: str = field(default="", metadata={"env": "REDIS_URL"})
    s3_endpoint: str = field(default="", metadata={"env": "S3_ENDPOINT"})
    s3_access_key: str = field(default="", metadata={"env": "S3_ACCESS_KEY", "secret": True})
    s3_secret_key: str = field(default="", metadata={"env": "S3_SECRET_KEY", "secret": True})
    s3_bucket: str = field(default="lectern", metadata={"env": "S3_BUCKET"})
    s3_region: str = field(default="us-east-1", metadata={"env": "S3_REGION"})
    s3_secure: bool = field(default=False, metadata={"env": "S3_SECURE"})
    # Where browsers reach the S3 server (scheme://host[:port]) when that is not S3_ENDPOINT, e.g. nginx
    # in front of MinIO: the part URLs of courseware uploads are signed for it. Empty: S3_ENDPOINT.
    s3_public_url: str = field(default="", metadata={"env": "S3_PUBLIC_URL"})
    secret_key: str = field(default="", metadata={"env": "LECTERN_SECRET_KEY", "secret": True})
    public_url: str = field(default="", metadata={"env": "LECTERN_PUBLIC_URL"})
    max_body_bytes: int = field(default=1024 * 1024, metadata={"env": "LECTERN_MAX_BODY_BYTES"})
    # The largest courseware file an expert may upload (straight to the object store, in parts).
    courseware_max_bytes: int = field(
        default=8 * 1024 * 1024 * 1024, metadata={"env": "LECTERN_COURSEWARE_MAX_BYTES"}
    )
    log_level: str = field(default="INFO", metadata={"env": "LECTERN_LOG_LEVEL"})
    session_ttl_s: int = field(default=7 * 24 * 3600, metadata={"env": "LECTERN_SESSION_TTL_S"})
    secure_cookies: bool = field(default=False, metadata={"env": "LECTERN_SECURE_COOKIES"})
    trusted_proxies: tuple[str, ...] = field(default=(), metadata={"env": "LECTERN_TRUSTED_PROXIES"})
    bus_retention: int = field(default=100_000, metadata={"env": "LECTERN_BUS_RETENTION"})
    ice_servers: tuple[str, ...] = field(default=(), metadata={"env": "LECTERN_ICE_SERVERS"})
    ice_host_addresses: tuple[str, ...] = field(default=(), metadata={"env": "LECTERN_ICE_HOST_ADDRESSES"})
    turn_secret: str = field(default="", metadata={"env": "LECTERN_TURN_SECRET", "secret": True})
    turn_credential_ttl_s: int = field(default=24 * 3600, metadata={"env": "LECTERN_TURN_CREDENTIAL_TTL_S"})
    room_seat_limit: int = field(default=50, metadata={"env": "LECTERN_ROOM_SEAT_LIMIT"})
    publisher_grace_s: float = field(default=30.0, metadata={"env": "LECTERN_PUBLISHER_GRACE_S"})
    segment_duration_s: float = field(default=2.0, metadata={"env": "LECTERN_SEGMENT_DURATION_S"})
    # How often ended sessions and completed replays are settled into the credit ledger (0: never).
    credit_settle_every_s: float = field(default=30.0, metadata={"env": "LECTERN_CREDIT_SETTLE_EVERY_S"})
    # Encrypts Tencent Meeting / DingTalk credentials at rest: 32 bytes, Base64. Unset in embedded mode:
    # derived from the secret key (fine for a single-machine trial, not for production).
    credentials_key: str = field(default="", metadata={"env": "LECTERN_CREDENTIALS_KEY", "secret": True})
    # How often linked Tencent Meeting / DingTalk sessions are checked for an automatic pull after their
    # end (0: never; the console's button still pulls).
    external_pull_every_s: float = field(default=60.0, metadata={"env": "LECTERN_EXTERNAL_PULL_EVERY_S"})
    # How old the supervision view's figures may grow before the background round recomputes them (0: only
    # on request; catalog/supervision/snapshot.py).
    supervision_refresh_every_s: float = field(
        default=300.0, metadata={"env": "LECTERN_SUPERVISION_REFRESH_EVERY_S"}
    )
    tencent_api_url: str = field(
        default="https://api.meeting.qq.com", metadata={"env": "LECTERN_TENCENT_API_URL"}
    )
    dingtalk_api_url: str = field(
        default="https://api.dingtalk.com", metadata={"env": "LECTERN_DINGTALK_API_URL"}
    )
    # Certificates (catalog/certificates): the CJK TrueType font their PDFs embed (a .ttc: its first
    # font), and the issuer named on annual transcripts.
    certificate_font: Path = field(
        default=Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
        metadata={"env": "LECTERN_CERTIFICATE_FONT"},
    )
    platform_name: str = field(
        default="青岛市专业技术人员继续教育平台", metadata={"env": "LECTERN_PLATFORM_NAME"}
    )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lectern.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_endpoint)

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def s3_browser_origin(self) -> str:
        """The origin browsers send courseware parts to with S3 (scheme://host[:port]); "" without S3."""
        if not self.uses_s3:
            return ""
        if self.s3_public_url:
            return self.s3_public_url.rstrip("/")
        return f"{'https' if self.s3_secure else 'http'}://{self.s3_endpoint}"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict fit for a log line: secrets and passwords in URLs are masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            elif isinstance(value, str) and "://" in value and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.split('@', 1)[1]}"
            out[f.name] = value if not isinstance(value, Path) else str(value)
        return out


def normalise_database_url(url: str) -> str:
    """Accept the plain URLs operators write and pick the async driver SQLAlchemy needs."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url


def env_names() -> dict[str, str]:
    """Environment variable name -> field name, for every setting."""
    return {f.metadata["env"]: f.name for f in fields(Settings)}


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind_s = str(kind)
    try:
        if kind_s in ("int", "<class 'int'>"):
            return int(raw)
        if kind_s in ("float", "<class 'float'>"):
            return float(raw)
        if kind_s in ("bool", "<class 'bool'>"):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind_s in ("Path", "<class 'pathlib.Path'>"):
            return Path(raw)
        if kind_s.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind_s}") from None
    return raw


def from_env(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; unknown LECTERN_* names are an error."""
    known = env_names()
    unknown = sorted(k for k in environ if k.startswith("LECTERN_") and k not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env = f.metadata["env"]
        if env in environ:
            values[f.name] = _parse(env, environ[env], f.type)
    settings = Settings(**values)
    if settings.port <= 0 or settings.port > 65535:
        raise SettingsError(f"LECTERN_PORT={settings.port} is out of range")
    if settings.s3_endpoint and not (settings.s3_access_key and settings.s3_secret_key):
        raise SettingsError("S3_ENDPOINT is set but S3_ACCESS_KEY or S3_SECRET_KEY is missing")
    problem = ice.check_urls(settings.ice_servers, settings.turn_secret)
    if problem:
        raise SettingsError(f"LECTERN_ICE_SERVERS: {problem} (LECTERN_TURN_SECRET)")
    try:
        client_address.parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"LECTERN_TRUSTED_PROXIES: {exc}") from None
    if settings.s3_public_url and not settings.s3_public_url.startswith(("http://", "https://")):
        raise SettingsError("S3_PUBLIC_URL must be an http:// or https:// URL (scheme://host[:port])")
    if settings.courseware_max_bytes <= 0:
        raise SettingsError("LECTERN_COURSEWARE_MAX_BYTES must be positive")
    if settings.database_pool_size <= 0:
        raise SettingsError("LECTERN_DATABASE_POOL_SIZE must be positive")
    if settings.turn_credential_ttl_s <= 0:
        raise SettingsError("LECTERN_TURN_CREDENTIAL_TTL_S must be positive")
    if settings.publisher_grace_s < 0:
        raise SettingsError("LECTERN_PUBLISHER_GRACE_S must not be negative")
    if settings.credentials_key and not _is_key(settings.credentials_key):
        raise SettingsError("LECTERN_CREDENTIALS_KEY must be 32 bytes in Base64 (openssl rand -base64 32)")
    return settings


def _is_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def with_secret_key(settings: Settings) -> Settings:
    """Embedded mode: keep a generated signing key in the data directory so restarts keep sessions."""
    if settings.secret_key:
        return settings
    path = settings.data_dir / "secret.key"
    if path.exists():
        key = path.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
    return replace_settings(settings, secret_key=key)


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)
