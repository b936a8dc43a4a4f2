"""The system of record: people, organizations, courses, sessions, attendance, credit (学时)."""

from catalog.db import Database, migrate, migrate_async
from catalog.replays import unlisted_recordings
from catalog.web import DATABASE, setup

__all__ = ["DATABASE", "Database", "migrate", "migrate_async", "setup", "unlisted_recordings"]
