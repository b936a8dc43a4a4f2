"""Routes for the browser pages: each path serves one static HTML file; data comes from /api."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# path pattern -> page file under static/
PAGES: dict[str, str] = {
    "/": "index.html",
    "/login": "login.html",
    "/register": "register.html",
    "/courses": "courses.html",
    r"/courses/{course_id:\d+}": "course.html",
    "/me": "me.html",
    "/provider": "provider.html",
    r"/studio/{session_id:\d+}": "studio.html",
    r"/watch/{session_id:\d+}": "watch.html",
    r"/replays/{recording_id:[A-Za-z0-9_-]{1,64}}": "replay.html",
}
# hls.js for the replay page, straight from node_modules (no build step); Chromium could play HLS natively
# but the page prefers hls.js where MSE exists, as on every other browser.
HLS_JS = STATIC_DIR.parent / "node_modules" / "hls.js" / "dist" / "hls.min.js"


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
