"""SQLAlchemy models of the system of record (see ../shared/DOMAIN.md §5)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
