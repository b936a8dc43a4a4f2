"""Reading certificates: one by serial, their current status (from the ledger as it is now), how each is
shown to its holder, and its PDF, rendered again from the row."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.certificates import access, rules
from catalog.certificates.pdf import Document, Renderer
from catalog.credit.engine import beijing_day
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import Certificate, CreditEntry
from infra.errors import NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What certificate services need besides the database: where the verification page is (the QR
    code's URL), who issues annual transcripts, and the PDF renderer."""

    base_url: str
    platform_name: str
    renderer: Renderer


async def by_serial(s: AsyncSession, serial: str, *, for_update: bool = False) -> Certificate | None:
    stmt = select(Certificate).where(Certificate.serial == serial)
    if for_update:
        stmt = stmt.with_for_update()
    return (await s.scalars(stmt)).first()


async def statuses(s: AsyncSession, certs: Sequence[Certificate]) -> dict[int, rules.Status]:
    """Each certificate's status now: its own revocation and replacement, and whether every entry it
    certifies is still registered and not reversed (two queries, whatever the number of certificates)."""
    ids = sorted({i for c in certs for i in c.entry_ids})
    current: dict[int, str] = {}
    reversed_ids: set[int] = set()
    if ids:
        rows = await s.execute(select(CreditEntry.id, CreditEntry.status).where(CreditEntry.id.in_(ids)))
        current = {entry_id: status for entry_id, status in rows}
        reversed_ids = set(
            await s.scalars(select(CreditEntry.reversal_of_id).where(CreditEntry.reversal_of_id.in_(ids)))
        )
    return {
        c.id: rules.status_of(
            revoked=c.revoked_at is not None,
            replaced=c.replaced_by_id is not None,
            entry_ids=c.entry_ids,
            entry_statuses=current,
            reversed_ids=reversed_ids,
        )
        for c in certs
    }


def pdf_path(serial: str) -> str:
    return f"/api/certificates/{serial}.pdf"


def item_view(cert: Certificate, status: rules.Status, ctx: Context) -> dict[str, Any]:
    """A certificate as its holder (and those who may read it) sees it."""
    return {
        "serial": cert.serial,
        "verify_code": cert.verify_code,
        "scope": cert.scope,
        "year": cert.year,
        "course_id": cert.course_id,
        "course_title": cert.course_title,
        "total_xueshi": str(cert.total_xueshi),
        "public_xueshi": str(cert.public_xueshi),
        "professional_xueshi": str(cert.professional_xueshi),
        "issuer": cert.issuer_name,
        "issued_at": cert.issued_at.isoformat(),
        "status": status.status,
        "status_reason": status.reason,
        "revoked_at": cert.revoked_at.isoformat() if cert.revoked_at else None,
        "revoked_reason": cert.revoked_reason,
        "pdf_url": pdf_path(cert.serial),
        "verify_url": rules.verify_url(ctx.base_url, cert.serial, cert.verify_code),
    }


def document_of(cert: Certificate, ctx: Context) -> Document:
    """What the PDF prints: the row's figures, as they were when it was issued."""
    return Document(
        name=cert.person_name,
        scope=cert.scope,
        year=cert.year,
        course_title=cert.course_title,
        public_xueshi=rules.xueshi_text(cert.public_xueshi),
        professional_xueshi=rules.xueshi_text(cert.professional_xueshi),
        total_xueshi=rules.xueshi_text(cert.total_xueshi),
        issuer=cert.issuer_name,
        issued_on=beijing_day(cert.issued_at),
        serial=cert.serial,
        code=cert.verify_code,
        verify_url=rules.verify_url(ctx.base_url, cert.serial, cert.verify_code),
        verify_page=f"{ctx.base_url.rstrip('/')}/verify",
    )


async def render(cert: Certificate, ctx: Context) -> bytes:
    """The certificate's PDF (in a worker thread: reportlab is blocking)."""
    return await asyncio.to_thread(ctx.renderer.render, document_of(cert, ctx))


async def pdf(cert: Certificate, ctx: Context) -> bytes:
    """The PDF again, from the row. Its SHA-256 is the one stored at issue unless the font, reportlab
    or LECTERN_PUBLIC_URL changed since: the figures are the same, the bytes are not; said in the log."""
    data = await render(cert, ctx)
    if cert.pdf_sha256 and hashlib.sha256(data).hexdigest() != cert.pdf_sha256:
        log.warning(
            "certificate pdf differs from the one issued serial=%s (font, reportlab or public URL changed)",
            cert.serial,
        )
    return data


async def download(db: Database, ctx: Context, caller: Caller, serial: str) -> bytes:
    """The PDF for those who may read it (catalog.certificates.access); anyone else gets the same 404 as
    for a serial that does not exist."""
    async with db.sessions.begin() as s:
        cert = await by_serial(s, serial)
        if cert is None or not await access.may_read(s, caller, cert):
            raise NotFound(f"certificate {serial} not found", field="serial")
    return await pdf(cert, ctx)
