"""The system of record: people, organizations, courses, sessions, attendance, credit (学时)."""

from catalog.db import Database, migrate, migrate_async
from catalog.web import DATABASE, setup

__all__ = ["DATABASE", "Database", "migrate", "migrate_async", "setup"]
