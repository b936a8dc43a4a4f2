"""Routes for the browser pages: each path serves one static HTML file; data comes from /api. Unknown or
forbidden page URLs answer a Chinese page (static/404.html, static/403.html) with that status, while the
machine paths (/api, /whip, /whep, /ws, /hls, …) keep infra.http's JSON errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from infra.http import Handler

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# path pattern -> page file under static/
PAGES: dict[str, str] = {
    "/": "index.html",
    "/login": "login.html",
    "/register": "register.html",
    "/courses": "courses.html",
    r"/courses/{course_id:\d+}": "course.html",
    "/me": "me.html",
    "/teach": "teach.html",
    "/teach/courseware": "teach-courseware.html",
    "/review/courseware": "review-courseware.html",
    "/provider": "provider.html",
    "/me/credits": "credits.html",
    "/admin/credit-policy": "policy.html",
    "/review": "review.html",
    "/mentorships": "mentorships.html",
    "/employer/plans": "plans.html",
    "/supervision": "supervision.html",
    "/employer": "employer.html",
    "/employer/staff": "employer-staff.html",
    "/verify": "verify.html",
    r"/studio/{session_id:\d+}": "studio.html",
    r"/watch/{session_id:\d+}": "watch.html",
    r"/replays/{recording_id:[A-Za-z0-9_-]{1,64}}": "replay.html",
    r"/venue/{session_id:\d+}": "venue.html",  # offline training: the venue's QR display (docs/offline.md)
    r"/venue/{session_id:\d+}/records": "offline-records.html",
    r"/checkin/{session_id:\d+}": "checkin.html",
}
# status -> the page a person gets for it at a page URL
ERROR_PAGES: dict[int, str] = {403: "403.html", 404: "404.html"}
# Paths read by programs, not people: their errors stay JSON (one shape, docs/api.md).
MACHINE_PREFIXES = ("/api", "/whip", "/whep", "/ws", "/hls", "/objects", "/metrics", "/healthz", "/readyz")
# hls.js for the replay page, straight from node_modules (no build step); Chromium could play HLS natively
# but the page prefers hls.js where MSE exists, as on every other browser.
HLS_JS = STATIC_DIR.parent / "node_modules" / "hls.js" / "dist" / "hls.min.js"


def is_page_path(path: str) -> bool:
    """Whether `path` is one a person opens in a browser (not under a machine prefix)."""
    return not any(path == prefix or path.startswith(prefix + "/") for prefix in MACHINE_PREFIXES)


def error_pages_middleware() -> Middleware:
    """A middleware (inside infra.http's error_middleware) answering a GET of an unknown or forbidden page
    URL with the Chinese page for its status; anything else passes on to the JSON error shape."""
    bodies = {status: (STATIC_DIR / name).read_bytes() for status, name in ERROR_PAGES.items()}

    @web.middleware
    async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            body = bodies.get(exc.status)
            if body is None or request.method not in ("GET", "HEAD") or not is_page_path(request.path):
                raise
            return web.Response(
                body=body,
                status=exc.status,
                content_type="text/html",
                charset="utf-8",
                headers={"Cache-Control": "no-cache"},
            )

    return error_pages


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC_DIR / filename

    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handler


async def _hls_js(_request: web.Request) -> web.FileResponse:
    if not HLS_JS.is_file():
        raise web.HTTPNotFound(text="hls.js is not installed (npm install)")
    return web.FileResponse(HLS_JS, headers={"Cache-Control": "public, max-age=86400"})


def add_routes(app: web.Application) -> None:
    for pattern, filename in PAGES.items():
        app.router.add_get(pattern, _page(filename))
    # Before the /static/ prefix, which would otherwise answer for this path.
    app.router.add_get("/static/vendor/hls.min.js", _hls_js)
    app.router.add_static("/static/", STATIC_DIR, name="static")
