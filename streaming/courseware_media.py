"""Courseware media for the catalog (catalog.CoursewareMedia): the PyAV check and the replay rendition of
an uploaded video, both on the recorder (recorder.ingest), reading the file from the object store by
ranged reads. Set on the app by `setup`, before it starts (the catalog's processor looks for it then)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

import catalog
from infra import events
from infra.appkeys import OBJECTS, SETTINGS
from infra.objects import ObjectStore
from infra.objects_reader import ObjectReader
from recorder import MediaRejected, VideoProbe, probe, record_file
from streaming.recording import finalized_event


class RecorderMedia:
    """`catalog.CoursewareMedia` on the recorder; the store is the app's (known once the app started)."""

    def __init__(self, app: web.Application, spool_dir: Path, segment_duration_s: float) -> None:
        self._app = app
        self._spool_dir = spool_dir
        self._segment_s = segment_duration_s

    @property
    def _store(self) -> ObjectStore:
        return self._app[OBJECTS]

    def _reader(self, key: str, size: int, loop: asyncio.AbstractEventLoop) -> ObjectReader:
        return ObjectReader(self._store, key, size, loop)

    async def check_video(self, key: str, size: int) -> catalog.VideoCheck:
        loop = asyncio.get_running_loop()
        try:
            found: VideoProbe = await asyncio.to_thread(lambda: probe(self._reader(key, size, loop)))
        except MediaRejected as exc:
            raise catalog.MediaRejected(str(exc)) from exc
        return catalog.VideoCheck(found.duration_s, found.width, found.height, found.copy_video)

    async def render(
        self, key: str, size: int, check: catalog.VideoCheck, session_id: int, recording_id: str
    ) -> events.RecordingFinalized:
        loop = asyncio.get_running_loop()
        try:
            summary = await record_file(
                self._store,
                lambda: self._reader(key, size, loop),
                check.copy_video,
                session_id=session_id,
                recording_id=recording_id,
                spool_dir=self._spool_dir,
                segment_duration_s=self._segment_s,
            )
        except MediaRejected as exc:
            raise catalog.MediaRejected(str(exc)) from exc
        return finalized_event(summary, datetime.now(UTC))


def setup(app: web.Application) -> None:
    """Give the catalog its courseware media (call in create_app, after catalog.setup)."""
    settings = app[SETTINGS]
    app[catalog.COURSEWARE_MEDIA] = RecorderMedia(
        app, settings.data_dir / "spool-courseware", settings.segment_duration_s
    )
