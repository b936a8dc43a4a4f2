"""The one normalized form of external attendance: every way in (API pull, webhook, exported file) and
every platform produces `ExternalRecord`s; identity mapping and the credit engine read only these.

Pure: imports nothing of aiohttp or SQLAlchemy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Platform(StrEnum):
    """What a session is linked to; also the `platform` of every record."""

    TENCENT = "tencent"  # 腾讯会议: one row per join, with device
    DINGTALK_CONF = "dingtalk_conf"  # 钉钉视频会议: one row per join
    DINGTALK_LIVE = "dingtalk_live"  # 钉钉直播: watch totals only, no join/leave (R21)


class Vendor(StrEnum):
    """Whose credentials a platform uses: an organization enters one set per vendor."""

    TENCENT = "tencent"
    DINGTALK = "dingtalk"


def vendor_of(platform: Platform) -> Vendor:
    return Vendor.TENCENT if platform is Platform.TENCENT else Vendor.DINGTALK


class Source(StrEnum):
    """How a batch of records came in."""

    API = "api"
    WEBHOOK = "webhook"
    FILE = "file"


class Trust(StrEnum):
    """HIGH: the platform measured join/leave instants. LOW: only a platform-reported total (DingTalk
    live, R21) or a hand-edited file; credit needs an extra check."""

    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class ExternalRecord:
    """One attendance row as a platform reports it, normalized.

    Times are timezone-aware UTC. `leave_at` None means still open (closes at the session's actual end,
    DOMAIN §6.3). Totals-only rows (DingTalk live) have `join_at`/`leave_at` None and `watched_s` set.
    Several rows per person are normal (rejoins, several devices); the union is the credit engine's job.
    """

    platform: Platform
    external_meeting_ref: str  # Tencent meeting_id (+ ":" sub_meeting_id), DingTalk conferenceId / liveId
    row_key: str  # stable across re-imports of the same row (idempotency); see `make_row_key`
    external_user_id: str | None  # Tencent userid/open_id, DingTalk unionId; None for dial-in / unknown
    display_name: str  # nickname as shown (editable: never matched on alone)
    join_at: datetime | None
    leave_at: datetime | None
    instance: str | None = None  # Tencent instanceid ("0" PSTN, "1" PC, ...), DingTalk deviceType
    connection_id: str | None = None  # the platform's id of this one connection (Tencent ms_open_id)
    is_pstn: bool = False  # dialled in by phone: review, never automatic credit (R20)
    phone: str | None = None  # plain digits, or Tencent's SHA256(phone + "/" + SecretId) when phone_hashed
    phone_hashed: bool = False
    watched_s: float | None = None  # totals-only platforms: reported watch time in seconds
    trust: Trust = Trust.HIGH
    raw_ref: str = ""  # where the row came from, for the review page: "page 2 #17", "row 14", "trace …"


def make_row_key(*parts: object) -> str:
    """A short stable key from the parts that identify a row (never from what may still change, such as
    a leave time that was open at the last pull)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
