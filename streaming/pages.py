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
}


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC_DIR / filename

    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handler


def add_routes(app: web.Application) -> None:
    for pattern, filename in PAGES.items():
        app.router.add_get(pattern, _page(filename))
    app.router.add_static("/static/", STATIC_DIR, name="static")
