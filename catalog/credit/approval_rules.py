"""Who may decide what about a ledger entry (employer approval, R23; separation of duties, fraud 21), and
the flags an approval raises. Pure: no SQL, no HTTP; the service (catalog.credit.approval) gathers the
facts and applies the answer.

Decisions move an entry's status along one edge each:
- approve  pending → registered   the employer_admin of the learner's employer; a learner with no
                                  employer: the HR bureau (`bureau` held in an `hrss_bureau` org); an
                                  employer administrator's own entry: another administrator of that
                                  employer, or the HR bureau (so a single administrator is not stuck)
- reject   pending → rejected     the same people, with a reason
- revoke   registered → revoked   the employer_admin of the learner's employer, the HR bureau, admins
- override rejected → registered  the HR bureau, admins
Nobody decides their own entry. A reversal entry carries the status of what it reverses and is never
decided on its own; a reversed entry is not decided any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from catalog.credit.evidence import MEDIUM, Flag
from infra.errors import Conflict, Forbidden, NotFound

APPROVE = "approve"
REJECT = "reject"
REVOKE = "revoke"
OVERRIDE = "override"
# action -> (the status it starts from, the status it leads to); catalog.credit.ledger's statuses.
TRANSITIONS: dict[str, tuple[str, str]] = {
    APPROVE: ("pending", "registered"),
    REJECT: ("pending", "rejected"),
    REVOKE: ("registered", "revoked"),
    OVERRIDE: ("rejected", "registered"),
}
ACTIONS = tuple(TRANSITIONS)
NEEDS_REASON = frozenset({REJECT, REVOKE, OVERRIDE})
# How the audit log names each act (subject: the credit entry).
AUDIT_ACTIONS = {
    APPROVE: "credit.approved",
    REJECT: "credit.rejected",
    REVOKE: "credit.revoked",
    OVERRIDE: "credit.overridden",
}

# Fraud 21 flag codes (catalog.credit.flags), raised on the approver, never blocking.
FLAG_TOO_FAST = "approval_too_fast"
FLAG_BULK = "approval_bulk"

EMPLOYER_ADMIN = "employer_admin"
BUREAU = "bureau"
ADMIN = "admin"


@dataclass(frozen=True)
class Authority:
    """What the caller may decide, from their roles (and the types of the organizations they hold them
    in): the employers whose administrator they are, the HR bureau they act for (if any), whether they
    supervise (the HR bureau, admin: they read every entry) and whether they are an admin."""

    person_id: int
    employer_orgs: frozenset[int]
    hrss_bureau: int | None
    supervisor: bool
    admin: bool

    def may_act(self, action: str) -> bool:
        """Whether the caller may take `action` on anybody's entry at all (else 403 before any lookup)."""
        if action in (APPROVE, REJECT):
            return bool(self.employer_orgs) or self.hrss_bureau is not None
        if action == REVOKE:
            return bool(self.employer_orgs) or self.hrss_bureau is not None or self.admin
        return self.hrss_bureau is not None or self.admin

    def may_read(self, employer: int | None) -> bool:
        """Whether the caller sees the entries of a learner employed by `employer` (None: no employer)."""
        return self.supervisor or (employer is not None and employer in self.employer_orgs)

    def acting_as(
        self, action: str, employer: int | None, *, learner_is_employer_admin: bool = False
    ) -> tuple[str, int | None] | None:
        """(the role acted in, the organization acted for) when the caller may take `action` on an
        entry of a learner employed by `employer` (who may themself be one of its administrators),
        else None."""
        mine = employer is not None and employer in self.employer_orgs
        if action in (APPROVE, REJECT):
            if mine:
                return EMPLOYER_ADMIN, employer
            if self.hrss_bureau is not None and bureau_decides(employer, learner_is_employer_admin):
                return BUREAU, self.hrss_bureau
            return None
        if action == REVOKE and mine:
            return EMPLOYER_ADMIN, employer
        if self.hrss_bureau is not None and action in (REVOKE, OVERRIDE):
            return BUREAU, self.hrss_bureau
        if self.admin and action in (REVOKE, OVERRIDE):
            return ADMIN, None
        return None


def bureau_decides(employer: int | None, learner_is_employer_admin: bool) -> bool:
    """Whether the HR bureau approves and rejects the entries of a learner employed by `employer`: a
    learner with no employer, and an employer administrator (their own entries; fraud 21 keeps them
    from deciding those, and an employer with one administrator has nobody else). Ordinary staff are
    their employer's to decide, never the bureau's."""
    return employer is None or learner_is_employer_admin


@dataclass(frozen=True)
class EntryFacts:
    """What the rules need to know of one entry."""

    entry_id: int
    person_id: int
    employer: int | None  # the learner's employer now (Person.employer_org_id)
    status: str
    kind: str
    reversed: bool
    # The learner holds `employer_admin` in `employer` now (their own employer; never with no employer).
    learner_is_employer_admin: bool = False


def check(authority: Authority, action: str, entry: EntryFacts) -> tuple[str, int | None]:
    """The role and organization the caller decides `entry` in, or the error saying why not: NotFound
    for an entry the caller may not see (it is not revealed), Forbidden for one's own entry or an action
    the caller may not take on it, Conflict for a reversal, a reversed entry or the wrong status."""
    if not authority.may_read(entry.employer):
        raise NotFound(f"credit entry {entry.entry_id} not found", field="entry_ids")
    if entry.person_id == authority.person_id:
        raise Forbidden(
            "nobody decides their own credit (separation of duties): another administrator of the"
            " employer or the HR bureau must",
            field="entry_ids",
            details={"reason": "own_entry", "entry_ids": [entry.entry_id]},
        )
    acting = authority.acting_as(
        action, entry.employer, learner_is_employer_admin=entry.learner_is_employer_admin
    )
    if acting is None:
        raise Forbidden(
            f"you may not {action} credit entry {entry.entry_id}",
            field="entry_ids",
            details={"reason": "not_yours_to_decide", "entry_ids": [entry.entry_id]},
        )
    if entry.kind == "reversal":
        raise Conflict(
            f"credit entry {entry.entry_id} is a reversal: it carries the status of what it reverses",
            field="entry_ids",
            details={"reason": "reversal", "entry_ids": [entry.entry_id]},
        )
    if entry.reversed:
        raise Conflict(
            f"credit entry {entry.entry_id} has been reversed and cannot be decided",
            field="entry_ids",
            details={"reason": "reversed", "entry_ids": [entry.entry_id]},
        )
    source, _target = TRANSITIONS[action]
    if entry.status != source:
        raise Conflict(
            f"credit entry {entry.entry_id} is {entry.status}: only {source} entries can be {action}d",
            field="entry_ids",
            details={"reason": "status", "status": entry.status, "entry_ids": [entry.entry_id]},
        )
    return acting


def allowed(authority: Authority, entry: EntryFacts) -> list[str]:
    """The actions the caller may take on `entry` now (what a page offers)."""
    out = []
    for action in ACTIONS:
        try:
            check(authority, action, entry)
        except (NotFound, Forbidden, Conflict):
            continue
        out.append(action)
    return out


def check_all(
    authority: Authority, action: str, entries: Sequence[EntryFacts], missing: Iterable[int]
) -> None:
    """Check every entry of one call; raise for the whole call (nothing is decided unless everything
    can be): NotFound naming every id not found or not visible, else the first Forbidden, else a
    Conflict naming every entry in the wrong state."""
    not_found = sorted(missing)
    forbidden: Forbidden | None = None
    conflicts: list[Conflict] = []
    for entry in entries:
        try:
            check(authority, action, entry)
        except NotFound:
            not_found.append(entry.entry_id)
        except Forbidden as exc:
            forbidden = forbidden or exc
        except Conflict as exc:
            conflicts.append(exc)
    if not_found:
        ids = sorted(not_found)
        raise NotFound(
            f"credit entries not found: {', '.join(map(str, ids))}",
            field="entry_ids",
            details={"entry_ids": ids},
        )
    if forbidden is not None:
        raise forbidden
    if len(conflicts) == 1:
        raise conflicts[0]
    if conflicts:
        ids = sorted(i for c in conflicts for i in (c.details or {}).get("entry_ids", []))
        raise Conflict(
            f"credit entries cannot be {action}d in their current state: {', '.join(map(str, ids))}",
            field="entry_ids",
            details={"reason": "state", "entry_ids": ids},
        )


def approval_flags(
    posted: Sequence[tuple[int, datetime]], now: datetime, *, min_seconds: int, bulk_flag_size: int
) -> list[Flag]:
    """Fraud 21: an approval sooner than `min_seconds` after the entry was computed (`posted` is
    (entry id, computed_at) of the entries approved in one call), and one call approving more than
    `bulk_flag_size` entries. Flagged for review, never blocked."""
    out: list[Flag] = []
    fast = {
        entry_id: round((now - at).total_seconds(), 1)
        for entry_id, at in posted
        if (now - at).total_seconds() < min_seconds
    }
    if fast:
        out.append(
            Flag(
                FLAG_TOO_FAST,
                MEDIUM,
                {"seconds_after_posting": {str(k): v for k, v in fast.items()}, "min_seconds": min_seconds},
            )
        )
    if len(posted) > bulk_flag_size:
        out.append(Flag(FLAG_BULK, MEDIUM, {"count": len(posted), "threshold": bulk_flag_size}))
    return out
