"""Turns a room's encoded media into fMP4 HLS segments and an MP4 in the object store."""

from recorder.finalize import AngleSummary, RecordingSummary
from recorder.frames import EncodedFrame
from recorder.index import finalized_recordings, read_summary
from recorder.ingest import MediaRejected, VideoProbe, probe, record_file
from recorder.recording import Recorder
from recorder.recovery import recover

__all__ = [
    "AngleSummary",
    "EncodedFrame",
    "MediaRejected",
    "Recorder",
    "RecordingSummary",
    "VideoProbe",
    "finalized_recordings",
    "probe",
    "read_summary",
    "record_file",
    "recover",
]
