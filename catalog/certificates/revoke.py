"""Revoking a certificate, with a reason, audited: the verification page shows it revoked from then on.

A revoked certificate is a document withdrawn (a misprinted name, a leaked copy); the credit itself is
withdrawn by revoking its ledger entries (catalog.credit.approval), which shows every certificate that
certifies them as revoked at once. Revocation is a timestamp and a reason on the row, never a delete.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from catalog import audit
from catalog import fields as f
from catalog.certificates import access, records
from catalog.db import Database
from catalog.domain import Caller
from infra.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)

REASON_MAX = 500


def parse_reason(body: dict[str, Any]) -> str:
    f.reject_unknown(body, {"reason"})
    reason = f.text(body, "reason", max_len=REASON_MAX, multiline=True)
    assert reason is not None
    return reason


async def revoke(
    db: Database, ctx: records.Context, caller: Caller, serial: str, reason: str, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        cert = await records.by_serial(s, serial, for_update=True)
        # Those who may not even read it learn nothing, not even that it exists.
        if cert is None or not (
            await access.may_read(s, caller, cert) or await access.revoking_role(s, caller, cert)
        ):
            raise NotFound(f"certificate {serial} not found", field="serial")
        role = await access.revoking_role(s, caller, cert)
        if role is None:
            if cert.person_id == caller.person_id:
                raise Forbidden("nobody revokes their own certificate", field="serial")
            raise Forbidden(
                "only the bureau, an admin or the issuing provider's administrators revoke certificates",
                field="serial",
            )
        if cert.revoked_at is not None:
            raise Conflict(f"certificate {serial} is already revoked", field="serial")
        cert.revoked_at = now
        cert.revoked_by = caller.person_id
        cert.revoked_reason = reason
        audit.record(
            s,
            actor=caller.person_id,
            action="certificate.revoked",
            subject_type="certificate",
            subject_id=cert.serial,
            detail={"person_id": cert.person_id, "reason": reason, "as": role},
            at=now,
        )
        await s.flush()
        status = (await records.statuses(s, [cert]))[cert.id]
        view = records.item_view(cert, status, ctx)
    log.info("certificate revoked serial=%s by=%s as=%s", serial, caller.person_id, role)
    return view
