"""The catalog's typed application keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from catalog.db import Database
from catalog.external import PullContext
from catalog.playback import Playbacks

DATABASE = web.AppKey("database", Database)

WithdrawalHook = Callable[[int, Sequence[int]], Awaitable[None]]
# Optional: called with (person id, the course's session ids) once a learner's withdrawal is committed.
# The composition root sets it so that the live server closes that learner's viewers and room sockets.
ON_WITHDRAWN: web.AppKey[WithdrawalHook] = web.AppKey("catalog_on_withdrawn")
# This process's open replay playback clients (superseded ones, checks issued): catalog.playback.
PLAYBACKS = web.AppKey("catalog_playbacks", Playbacks)

# The HTTP client and credentials key the external-meeting pulls and webhooks use (catalog.external).
EXTERNAL: web.AppKey[PullContext] = web.AppKey("catalog_external", PullContext)
