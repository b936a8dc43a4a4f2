"""Who an external attendance record is (R20, fraud 12): a learner's linked platform account, else their
phone compared as a hash, else a person decides (the manual matching queue). Never a nickname: anyone can
rename themselves in a meeting. Dial-in rows always go to a person, even when their number is known.

Pure: the caller loads the links and the candidate learners (those enrolled in the session's course)
and stores the decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from integrations.records import ExternalRecord


class Match(StrEnum):
    """How a stored record came to its person (the `external_records.match` column)."""

    LINKED = "linked"  # a verified linked account
    PHONE = "phone"  # the phone's hash equals an enrolled learner's
    MANUAL = "manual"  # a provider administrator matched it by hand
    UNMATCHED = "unmatched"  # waiting in the manual queue
    PSTN = "pstn"  # dialled in: waiting in the manual queue
    REJECTED = "rejected"  # a provider administrator decided it is nobody to credit


REVIEW = frozenset({Match.UNMATCHED, Match.PSTN})
CREDITED = frozenset({Match.LINKED, Match.PHONE, Match.MANUAL})


class Reason(StrEnum):
    """Why a record matched or waits for review (the import report's `reason`)."""

    LINKED_ACCOUNT = "linked_account"
    PHONE = "phone"
    LINK_VERIFIED_BY_PHONE = "link_verified_by_phone"
    DIAL_IN = "dial_in"
    LINK_NOT_VERIFIED = "link_not_verified"  # the learner linked the id themselves; nothing confirms it
    LINK_AND_PHONE_DISAGREE = "link_and_phone_disagree"
    ACCOUNT_NOT_LINKED = "account_not_linked"
    PHONE_NOT_ENROLLED = "phone_matches_no_enrolled_learner"
    NAME_ONLY = "name_only"  # nothing but a nickname


@dataclass(frozen=True)
class Link:
    person_id: int
    verified: bool


@dataclass(frozen=True)
class Decision:
    match: Match
    reason: Reason
    person_id: int | None = None  # only for automatic matches (LINKED, PHONE)
    suggested_person_id: int | None = None  # a hint for the reviewer, never credit
    verify_link: bool = False  # the record's account link is now confirmed (same person by phone)
    new_link: bool = False  # link the record's account to `person_id` (found by phone), verified


def sha256_phone(phone: str) -> str:
    return hashlib.sha256(phone.encode()).hexdigest()


def tencent_phone(phone: str, secret_id: str) -> str:
    """Tencent's participant `phone`: SHA256(phone + "/" + SecretId) (DOMAIN §6.1)."""
    return hashlib.sha256(f"{phone}/{secret_id}".encode()).hexdigest()


class PhoneIndex:
    """Candidate learners' phones, kept only as hashes: plain SHA-256 for phones read from files, and
    Tencent's salted hash for the API's (when the organization's SecretId is known)."""

    def __init__(self, phones: Mapping[int, str], tencent_secret_id: str | None = None) -> None:
        self._plain: dict[str, set[int]] = {}
        self._tencent: dict[str, set[int]] = {}
        for person_id, phone in phones.items():
            self._plain.setdefault(sha256_phone(phone), set()).add(person_id)
            if tencent_secret_id:
                self._tencent.setdefault(tencent_phone(phone, tencent_secret_id), set()).add(person_id)

    def person_of(self, record: ExternalRecord) -> int | None:
        """The one candidate whose phone the record carries; None for no phone, no match, or several."""
        if not record.phone:
            return None
        if record.phone_hashed:
            found = self._tencent.get(record.phone.lower(), set())
        else:
            found = self._plain.get(sha256_phone(record.phone), set())
        return next(iter(found)) if len(found) == 1 else None


def stored_phone_hash(record: ExternalRecord) -> tuple[str | None, str | None]:
    """(hash, scheme) as `external_records` keeps a record's phone: never the digits."""
    if not record.phone:
        return None, None
    if record.phone_hashed:
        return record.phone.lower(), "tencent"
    return sha256_phone(record.phone), "sha256"


def decide(record: ExternalRecord, links: Mapping[str, Link], phones: PhoneIndex) -> Decision:
    """The record's person, or why a person has to decide. `links` maps the platform's user ids (of this
    vendor) to linked learners."""
    uid = record.external_user_id
    link = links.get(uid) if uid else None
    by_phone = phones.person_of(record)
    if record.is_pstn:
        hint = link.person_id if link else by_phone
        return Decision(Match.PSTN, Reason.DIAL_IN, suggested_person_id=hint)
    if link is not None:
        if link.verified:
            return Decision(Match.LINKED, Reason.LINKED_ACCOUNT, link.person_id)
        if by_phone == link.person_id:
            return Decision(Match.LINKED, Reason.LINK_VERIFIED_BY_PHONE, link.person_id, verify_link=True)
        if by_phone is not None:
            return Decision(Match.UNMATCHED, Reason.LINK_AND_PHONE_DISAGREE, suggested_person_id=by_phone)
        return Decision(Match.UNMATCHED, Reason.LINK_NOT_VERIFIED, suggested_person_id=link.person_id)
    if by_phone is not None:
        return Decision(Match.PHONE, Reason.PHONE, by_phone, new_link=uid is not None)
    if uid:
        return Decision(Match.UNMATCHED, Reason.ACCOUNT_NOT_LINKED)
    if record.phone:
        return Decision(Match.UNMATCHED, Reason.PHONE_NOT_ENROLLED)
    return Decision(Match.UNMATCHED, Reason.NAME_ONLY)
