"""Spool accounting: pending bytes, the limit, and the transitions that are logged; and the folders a
finalized recording leaves (none)."""

from __future__ import annotations

from pathlib import Path

from recorder.spool import SpoolAccount, remove_recording_dir


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


def test_a_finalized_recordings_folder_goes_and_its_sessions_folder_with_it_once_empty(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "7" / "rec-a", tmp_path / "7" / "rec-b"
    for folder in (first, second):
        (folder / "camera").mkdir(parents=True)
        (folder / "camera" / "seg_000001.m4s").write_bytes(b"x")
    remove_recording_dir(first)
    assert [p.name for p in (tmp_path / "7").iterdir()] == ["rec-b"]  # the session still records
    remove_recording_dir(second)
    assert list(tmp_path.iterdir()) == []
