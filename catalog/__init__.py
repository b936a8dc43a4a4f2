"""The system of record: people, organizations, courses, sessions, attendance, credit (学时)."""

from catalog.courseware.processing import COURSEWARE_MEDIA, CoursewareMedia, MediaRejected, VideoCheck
from catalog.credit.policies import heartbeat_period_s
from catalog.db import Database, migrate, migrate_async
from catalog.domain import MediaPurpose
from catalog.keys import ON_WITHDRAWN, WithdrawalHook
from catalog.media import MediaGrant, check_grant, check_media_grant
from catalog.replays import unlisted_recordings
from catalog.web import DATABASE, setup

__all__ = [
    "COURSEWARE_MEDIA",
    "DATABASE",
    "ON_WITHDRAWN",
    "CoursewareMedia",
    "Database",
    "MediaGrant",
    "MediaPurpose",
    "MediaRejected",
    "VideoCheck",
    "WithdrawalHook",
    "check_grant",
    "check_media_grant",
    "heartbeat_period_s",
    "migrate",
    "migrate_async",
    "setup",
    "unlisted_recordings",
]
