"""The route table's vocabulary: `Route` (one /api route with what the OpenAPI document says of it) and
the path parameters shared by the modules that declare routes (catalog.api and the feature modules whose
`ROUTES` it adds to its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.http import Handler


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    access: str  # who may call it, in words; the authorization test pins the details
    tag: str
    body: dict[str, Any] | None = None  # JSON Schema of the request body
    query: tuple[str, ...] = ()  # names of query parameters (described in schemas.QUERY)
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    login: bool = True  # False: callable anonymously
    content_type: str = "application/json"  # of a 2xx answer (downloads answer CSV or XLSX)


COURSE = r"{course_id:\d+}"
SESSION = r"{session_id:\d+}"
ORG = r"{org_id:\d+}"
PLATFORM = r"{platform:tencent|dingtalk}"
# Recording ids are made by the recorder: letters, digits, '-' and '_' (anything else is simply not found).
RECORDING = r"{recording_id:[A-Za-z0-9_-]{1,64}}"
FLAG = r"{flag_id:\d+}"
PLAYBACK_CLIENT = r"{client_id:[0-9a-f]{32}}"
CHECK = r"{check_id:[0-9a-f]{32}\.[0-9]{1,6}}"
