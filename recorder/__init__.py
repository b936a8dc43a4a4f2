"""Turns a room's encoded media into fMP4 HLS segments and an MP4 in the object store."""

from recorder.finalize import AngleSummary, RecordingSummary
from recorder.frames import EncodedFrame
from recorder.recording import Recorder
from recorder.recovery import recover

__all__ = ["AngleSummary", "EncodedFrame", "Recorder", "RecordingSummary", "recover"]
