"""Turns a room's encoded media into fMP4 HLS segments and an MP4 in the object store."""

from recorder.finalize import AngleSummary, RecordingSummary
from recorder.frames import EncodedFrame
from recorder.index import finalized_recordings, read_summary
from recorder.recording import Recorder
from recorder.recovery import recover

__all__ = [
    "AngleSummary",
    "EncodedFrame",
    "Recorder",
    "RecordingSummary",
    "finalized_recordings",
    "read_summary",
    "recover",
]
