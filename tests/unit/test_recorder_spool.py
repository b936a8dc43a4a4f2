"""Spool accounting: pending bytes, the limit, and the transitions that are logged."""

from __future__ import annotations

from recorder.spool import SpoolAccount


def test_spool_admits_files_until_the_limit_and_counts_the_dropped_ones() -> None:
    spool = SpoolAccount(limit_bytes=1000)
    assert spool.admit("a", 600)
    assert not spool.admit("b", 500)
    assert spool.over_limit
    assert spool.dropped_files == 1
    assert spool.pending_bytes == 600


def test_uploads_release_bytes_and_report_when_the_spool_is_back_under_half_its_limit() -> None:
    spool = SpoolAccount(limit_bytes=1000)
    spool.admit("a", 400)
    spool.admit("b", 500)
    assert not spool.admit("c", 400)
    assert not spool.uploaded("a")  # 500 pending: not yet under half
    assert spool.uploaded("b")
    assert spool.pending_bytes == 0
    assert not spool.over_limit
    assert spool.admit("c", 400)
