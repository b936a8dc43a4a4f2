"""The pure rules of certificates: serials and codes (random, readable, not sequential), masking a name
for the public page, totals by category, how 学时 are written, and a certificate's status."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from catalog.certificates import rules
from catalog.certificates.rules import Entry, Status, status_of


def test_serials_carry_the_year_and_fifty_random_bits_of_a_readable_alphabet() -> None:
    serials = [rules.new_serial(2026) for _ in range(2000)]
    assert all(rules.is_serial(s) for s in serials)
    assert all(s.startswith("QDCE-2026-") and len(s) == 20 for s in serials)
    assert len(set(serials)) == len(serials)
    tails = "".join(s[10:] for s in serials)
    assert not set(tails) & set("01IO")  # nothing to misread
    assert set(tails) == set(rules.ALPHABET)  # every symbol drawn: the whole alphabet is in use
    # Not sequential: consecutive serials share no long common prefix.
    assert sum(a[10:13] == b[10:13] for a, b in itertools.pairwise(serials)) < 5


def test_codes_are_eight_characters_of_the_same_alphabet() -> None:
    codes = {rules.new_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(rules.is_code(c) and len(c) == rules.CODE_LEN for c in codes)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("qdce-2026-abcd", "QDCE-2026-ABCD"), (" ABCD EFGH ", "ABCDEFGH"), ("ab\tcd\n", "ABCD"), ("", "")],
    ids=["lower-case", "grouped", "tabs-newlines", "empty"],
)
def test_what_a_person_types_is_normalised(typed: str, stored: str) -> None:
    assert rules.normalise(typed) == stored


@pytest.mark.parametrize(
    ("text", "serial"),
    [
        ("QDCE-2026-23456789AB", True),
        ("QDCE-2026-23456789A", False),
        ("QDCE-2026-0000000000", False),
        ("QDCE-26-23456789AB", False),
        ("qdce-2026-23456789ab", False),
    ],
    ids=["good", "short", "ambiguous-digits", "two-digit-year", "lower-case"],
)
def test_what_a_serial_looks_like(text: str, serial: bool) -> None:
    assert rules.is_serial(text) is serial


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("张小三", "张*三"),
        ("欧阳小明", "欧**明"),
        ("李", "*"),
        ("阿卜杜热合曼", "阿***曼"),
        ("", "*"),
    ],
    ids=["two", "three", "four", "one", "long", "empty"],
)
def test_names_are_masked_for_the_public(name: str, masked: str) -> None:
    assert rules.mask_name(name) == masked


def test_the_verify_url_holds_both_parts() -> None:
    url = rules.verify_url("https://lectern.example.cn/", "QDCE-2026-23456789AB", "ABCDEFGH")
    assert url == "https://lectern.example.cn/verify?serial=QDCE-2026-23456789AB&code=ABCDEFGH"


def test_totals_are_by_category_to_the_cent() -> None:
    t = rules.totals(
        [
            Entry(1, "public", Decimal("1.5")),
            Entry(2, "professional", Decimal("2")),
            Entry(3, "public", Decimal("0.25")),
        ]
    )
    assert (t.public, t.professional, t.total) == (Decimal("1.75"), Decimal("2.00"), Decimal("3.75"))
    with pytest.raises(ValueError, match="unknown credit category"):
        rules.totals([Entry(1, "elective", Decimal(1))])


@pytest.mark.parametrize(
    ("value", "text"),
    [("12.50", "12.5"), ("3.00", "3"), ("0.00", "0"), ("10.00", "10"), ("0.25", "0.25")],
)
def test_xueshi_are_written_without_trailing_zeros(value: str, text: str) -> None:
    assert rules.xueshi_text(Decimal(value)) == text


REGISTERED = {1: "registered", 2: "registered"}


@pytest.mark.parametrize(
    ("revoked", "replaced", "statuses", "reversed_ids", "expected"),
    [
        (False, False, REGISTERED, set(), Status("valid", None)),
        (False, True, REGISTERED, set(), Status("replaced", None)),
        (True, False, REGISTERED, set(), Status("revoked", "certificate_revoked")),
        (True, True, REGISTERED, set(), Status("revoked", "certificate_revoked")),
        (False, False, {1: "registered", 2: "revoked"}, set(), Status("revoked", "credit_revoked")),
        (False, True, {1: "registered", 2: "revoked"}, set(), Status("revoked", "credit_revoked")),
        (False, False, REGISTERED, {2}, Status("revoked", "credit_reversed")),
        (False, False, {1: "registered", 2: "pending"}, set(), Status("revoked", "credit_not_registered")),
        (False, False, {1: "registered"}, set(), Status("revoked", "credit_not_registered")),
    ],
    ids=[
        "valid",
        "replaced",
        "revoked",
        "revoked-beats-replaced",
        "entry-revoked",
        "entry-revoked-beats-replaced",
        "entry-reversed",
        "entry-pending-again",
        "entry-gone",
    ],
)
def test_a_certificates_status_follows_the_ledger(
    revoked: bool, replaced: bool, statuses: dict[int, str], reversed_ids: set[int], expected: Status
) -> None:
    got = status_of(
        revoked=revoked,
        replaced=replaced,
        entry_ids=[1, 2],
        entry_statuses=statuses,
        reversed_ids=reversed_ids,
    )
    assert got == expected
