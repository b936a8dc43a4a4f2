"""The deployment files: docker-compose.yml wires every service Lectern needs with known settings, and
the nginx template renders into a config that really serves static files and proxies the app, its
WebSockets and cached HLS from the object store (nginx run unprivileged over loopback)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web

from infra.settings import env_names, from_env
from tests.helpers import free_port, wait_until, wait_until_sync
from tests.server import running_server

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
BUCKET = "lectern-test"


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_nginx", REPO / "scripts" / "render_nginx.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_nginx = _load_renderer()


# --- docker-compose.yml ---------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


class MissingVariable(KeyError):
    pass


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Docker Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ for a literal $."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        current = environ.get(name, "")
        if op in (":?", "?") and not current:
            raise MissingVariable(name)
        if op in (":-", "-") and not current:
            return arg or ""
        return current

    return INTERPOLATION.sub(one, value)


def required_variables(value: str) -> set[str]:
    return {m.group(1) for m in INTERPOLATION.finditer(value) if m.group(2) in (":?", "?")}


def all_variables(value: str) -> set[str]:
    return {m.group(1) for m in INTERPOLATION.finditer(value) if m.group(1)}


def compose_strings(node: object) -> Iterator[str]:
    """Every key and value of the parsed compose file (comments are not configuration)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from compose_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from compose_strings(item)
    elif node is not None:
        yield str(node)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def service_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


# What an operator would put in .env: every required variable with a plausible value.
SAMPLE_ENV = {
    "POSTGRES_PASSWORD": "pg-pass-1234",
    "LECTERN_SECRET_KEY": "k" * 48,
    "LECTERN_PUBLIC_URL": "https://lectern.example.cn",
    "PUBLIC_HOSTNAME": "lectern.example.cn",
    "LECTERN_ICE_SERVERS": "turn:turn.example.cn:3478",
    "S3_ACCESS_KEY": "lectern-app",
    "S3_SECRET_KEY": "s3-secret-1234",
    "MINIO_ROOT_USER": "minio-root",
    "MINIO_ROOT_PASSWORD": "minio-root-1234",
    "LECTERN_TURN_SECRET": "turn-secret-1234",
    "TURN_EXTERNAL_IP": "203.0.113.7",
}


def test_compose_defines_the_whole_stack(compose: dict[str, Any]) -> None:
    expected = {"app", "postgres", "redis", "minio", "minio-init", "nginx", "coturn"}
    assert expected <= set(compose["services"]), f"missing: {expected - set(compose['services'])}"
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")
    assert compose["services"]["redis"]["image"].startswith("redis:7")
    assert compose["services"]["app"]["build"] == "."


def test_app_sets_only_settings_lectern_knows(compose: dict[str, Any]) -> None:
    unknown = sorted(set(service_env(compose, "app")) - set(env_names()))
    assert not unknown, f"the app service sets variables Settings does not read: {unknown}"


def test_app_sets_every_setting_the_real_services_need(compose: dict[str, Any]) -> None:
    env = service_env(compose, "app")
    needed = {
        "LECTERN_HOST",
        "LECTERN_PORT",
        "LECTERN_DATA_DIR",
        "DATABASE_URL",
        "REDIS_URL",
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "S3_BUCKET",
        "LECTERN_SECRET_KEY",
        "LECTERN_PUBLIC_URL",
        "LECTERN_ICE_SERVERS",
        "LECTERN_SECURE_COOKIES",
    }
    assert not needed - set(env), f"the app service lacks {sorted(needed - set(env))}"
    assert env["LECTERN_HOST"] == "0.0.0.0"


def test_app_environment_parses_into_production_settings(compose: dict[str, Any]) -> None:
    env = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "app").items()}
    settings = from_env(env)
    assert settings.effective_database_url.startswith("postgresql+asyncpg://")
    assert settings.uses_s3
    assert settings.redis_url.startswith("redis://")
    assert settings.secure_cookies
    assert settings.secret_key == SAMPLE_ENV["LECTERN_SECRET_KEY"]
    assert settings.ice_servers == ("turn:turn.example.cn:3478",)
    assert settings.turn_secret == SAMPLE_ENV["LECTERN_TURN_SECRET"]


def test_app_points_at_the_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    app = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "app").items()}
    pg = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "postgres").items()}
    db = urlsplit(app["DATABASE_URL"])
    assert (db.hostname, db.port, db.path) == ("postgres", 5432, f"/{pg['POSTGRES_DB']}")
    assert (db.username, db.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])

    assert urlsplit(app["REDIS_URL"]).hostname == "redis"

    host, _, port = app["S3_ENDPOINT"].partition(":")
    assert host == "minio"
    assert f":{port}" in services["minio"]["command"], "MinIO listens on another port than S3_ENDPOINT"
    init = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "minio-init").items()}
    # minio-init creates the bucket and the user the app logs in with.
    for name in ("S3_BUCKET", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        assert init[name] == app[name], f"minio-init and app disagree on {name}"
    minio = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "minio").items()}
    assert init["MINIO_ROOT_PASSWORD"] == minio["MINIO_ROOT_PASSWORD"]

    nginx = {k: interpolate(v, SAMPLE_ENV) for k, v in service_env(compose, "nginx").items()}
    assert nginx["NGX_APP_UPSTREAM"] == f"app:{app['LECTERN_PORT']}"
    assert nginx["NGX_S3_UPSTREAM"] == app["S3_ENDPOINT"]
    assert nginx["NGX_S3_BUCKET"] == app["S3_BUCKET"]
    assert nginx["NGX_PUBLIC_URL"] == app["LECTERN_PUBLIC_URL"]

    conditions = {k: v["condition"] for k, v in services["app"]["depends_on"].items()}
    assert conditions == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "minio-init": "service_completed_successfully",
    }


def test_compose_refuses_to_start_without_its_secrets(compose: dict[str, Any]) -> None:
    required = set().union(*(required_variables(s) for s in compose_strings(compose)))
    secrets = {
        "POSTGRES_PASSWORD",
        "LECTERN_SECRET_KEY",
        "S3_SECRET_KEY",
        "MINIO_ROOT_PASSWORD",
        "LECTERN_TURN_SECRET",
    }
    assert secrets <= required, f"not required (${{VAR:?}}): {sorted(secrets - required)}"
    # And none is written out: every password-like value is an interpolation.
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{name}.{key} is hard-coded"


def test_nginx_service_fills_every_placeholder_of_the_template(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    env = service_env(compose, "nginx")
    template = (REPO / "nginx" / "nginx.conf.template").read_text()
    given = {k for k in env if k.startswith("NGX_")}
    assert given == render_nginx.placeholders(template)
    assert env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    volumes = [interpolate(v, SAMPLE_ENV).split(":") for v in nginx["volumes"]]
    mounts = {v[1]: v[0] for v in volumes}
    assert mounts["/etc/nginx/templates/nginx.conf.template"] == "./nginx/nginx.conf.template"
    assert mounts[env["NGX_STATIC_DIR"]] == "./static"
    assert mounts[env["NGX_PREFIX"]] == "nginx-cache"
    cert_dir = str(Path(env["NGX_TLS_CERT"]).parent)
    assert cert_dir in mounts
    assert cert_dir == str(Path(env["NGX_TLS_KEY"]).parent)


def test_every_compose_variable_is_documented(compose: dict[str, Any]) -> None:
    docs = (REPO / "docs" / "operations.md").read_text()
    variables = set().union(*(all_variables(s) for s in compose_strings(compose)))
    missing = sorted(v for v in variables if f"`{v}`" not in docs)
    assert not missing, f"docs/operations.md does not explain: {missing}"


def test_dockerfile_migrates_then_serves_and_copies_only_what_exists() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#")
    assert "FROM python:3.11-slim" in text
    assert 'CMD ["sh", "-c", "lectern migrate && exec lectern serve"]' in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


# --- the rendered nginx config ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


def as_nobody(argv: list[str]) -> list[str]:
    """nginx as an unprivileged user, like in production (root here only to drop privileges)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@dataclass
class Edge:
    prefix: Path
    conf: Path
    https_url: str
    http_url: str
    cert: Path
    process: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else "(no error.log)"


@contextmanager
def rendered_edge(tls: tuple[Path, Path], app_upstream: str, s3_upstream: str) -> Iterator[Edge]:
    """A prefix directory owned by nobody holding the rendered config and the TLS files."""
    prefix = Path(tempfile.mkdtemp(prefix="lectern-nginx-"))
    try:
        cert, key = (Path(shutil.copy(p, prefix / p.name)) for p in tls)
        https_port, http_port = free_port(), free_port()
        conf = prefix / "nginx.conf"
        code = render_nginx.main(
            [
                "--prefix",
                str(prefix),
                "--app-upstream",
                app_upstream,
                "--s3-upstream",
                s3_upstream,
                "--bucket",
                BUCKET,
                "--http-port",
                str(http_port),
                "--https-port",
                str(https_port),
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
                "--static-dir",
                str(REPO / "static"),
                "--public-url",
                f"https://127.0.0.1:{https_port}",
                "--out",
                str(conf),
            ]
        )
        assert code == 0
        if os.geteuid() == 0:
            prefix.chmod(0o700)
            for p in [prefix, *prefix.iterdir()]:
                os.chown(p, NOBODY, NOBODY)
        yield Edge(
            prefix=prefix,
            conf=conf,
            https_url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            cert=cert,
        )
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def nginx_argv(edge: Edge, *extra: str) -> list[str]:
    return as_nobody(
        ["nginx", "-p", str(edge.prefix), "-c", str(edge.conf), "-e", str(edge.prefix / "error.log"), *extra]
    )


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def running_nginx(edge: Edge) -> Iterator[Edge]:
    process = subprocess.Popen(
        nginx_argv(edge, "-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    edge.process = process

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}:\n{edge.error_log()}")
        return _accepts(edge.https_url) and _accepts(edge.http_url)

    try:
        wait_until_sync(listening, timeout_s=10, message="nginx to listen")
        yield edge
    finally:
        # SIGQUIT: graceful shutdown of the master and its workers (setpriv exec'd nginx: same pid).
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, f"nginx exited with {code}:\n{edge.error_log()}"


def test_rendered_config_passes_nginx_t(tls_files: tuple[Path, Path]) -> None:
    with rendered_edge(tls_files, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") as edge:
        result = subprocess.run(nginx_argv(edge, "-t"), capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
        conf = edge.conf.read_text()
        assert not render_nginx.PLACEHOLDER.search(conf)
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            assert f"{temp}_temp_path {edge.prefix}/" in conf


@pytest.mark.parametrize(
    ("option", "value"),
    [("--app-upstream", "127.0.0.1:1; include /etc/passwd"), ("--bucket", "b}"), ("--server-name", "")],
    ids=["semicolon", "brace", "empty"],
)
def test_renderer_refuses_values_that_would_change_the_config_syntax(
    tls_files: tuple[Path, Path], tmp_path: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "--prefix": str(tmp_path),
        "--app-upstream": "127.0.0.1:1",
        "--s3-upstream": "127.0.0.1:2",
        "--tls-cert": str(tls_files[0]),
        "--tls-key": str(tls_files[1]),
        "--out": str(tmp_path / "n.conf"),
        "--bucket": "b",
        "--server-name": "_",
    }
    argv[option] = value
    assert render_nginx.main([x for kv in argv.items() for x in kv]) == 2
    assert "unsafe" in capsys.readouterr().err
    assert not (tmp_path / "n.conf").exists()


# --- upstreams for the running edge -----------------------------------------------------------------


@dataclass
class FakeObjects:
    """An S3-like origin: GET /<bucket>/<key> from a dict, every request remembered."""

    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, dict(request.headers)))
        bucket, _, key = request.path.lstrip("/").partition("/")
        if request.method != "GET":
            return web.Response(status=403)
        if bucket != BUCKET or key not in self.objects:
            return web.Response(status=404, text="NoSuchKey")
        body, content_type = self.objects[key]
        return web.Response(body=body, content_type=content_type)

    def paths(self, path: str) -> list[dict[str, str]]:
        return [headers for _method, p, headers in self.requests if p == path]


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo:{message.data}")
    return ws


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_objects() -> AsyncIterator[tuple[FakeObjects, str]]:
    origin = FakeObjects()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", origin.handle)
    async with serving(app) as address:
        yield origin, address


@pytest.fixture
async def client(tls_files: tuple[Path, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that trusts only the test certificate (real TLS verification against nginx)."""
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


# --- the running edge -----------------------------------------------------------------------------


async def test_nginx_proxies_the_app_and_serves_static_files(
    tls_files: tuple[Path, Path],
    tmp_path: Path,
    fake_objects: tuple[FakeObjects, str],
    client: aiohttp.ClientSession,
) -> None:
    with (
        running_server(tmp_path / "var") as app,
        rendered_edge(tls_files, f"127.0.0.1:{app.port}", fake_objects[1]) as edge,
        running_nginx(edge),
    ):
        async with client.get(f"{edge.https_url}/healthz") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ok"
            # The app keeps nginx's $request_id, so nginx and app log lines share one id.
            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])
        assert re.search(r"request=[0-9a-f]{32} GET /healthz status=200", app.log_text())

        async with client.get(f"{edge.https_url}/") as r:
            assert r.status == 200
            assert "讲堂" in await r.text()

        async with client.get(f"{edge.https_url}/static/style.css") as r:
            assert r.status == 200
            assert r.content_type == "text/css"
            assert await r.read() == (REPO / "static" / "style.css").read_bytes()
            assert r.headers["Cache-Control"] == "max-age=3600"  # set by nginx, not the app
        assert "/static/style.css" not in app.log_text()

        async with client.get(f"{edge.https_url}/metrics") as r:
            assert r.status == 404

        async with client.get(f"{edge.http_url}/courses?x=1", allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"] == f"{edge.https_url}/courses?x=1"


async def test_nginx_passes_websocket_upgrades_to_the_app(
    tls_files: tuple[Path, Path], fake_objects: tuple[FakeObjects, str], client: aiohttp.ClientSession
) -> None:
    echo = web.Application()
    echo.router.add_get("/ws/echo", ws_echo)
    async with serving(echo) as address:
        with rendered_edge(tls_files, address, fake_objects[1]) as edge, running_nginx(edge):
            wss = edge.https_url.replace("https://", "wss://")
            async with client.ws_connect(f"{wss}/ws/echo") as ws:
                await ws.send_str("你好")
                assert await ws.receive_str(timeout=5) == "echo:你好"
                await ws.send_str("second")
                assert await ws.receive_str(timeout=5) == "echo:second"


async def test_nginx_caches_segments_long_and_playlists_briefly(
    tls_files: tuple[Path, Path], fake_objects: tuple[FakeObjects, str], client: aiohttp.ClientSession
) -> None:
    origin, s3_address = fake_objects
    playlist = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXTINF:2.0,\nseg_00001.m4s\n"
    segment = bytes(range(256)) * 64
    origin.objects["hls/x/index.m3u8"] = (playlist, "application/vnd.apple.mpegurl")
    origin.objects["hls/x/seg_00001.m4s"] = (segment, "video/iso.segment")
    echo = web.Application()
    async with serving(echo) as app_address:
        with rendered_edge(tls_files, app_address, s3_address) as edge, running_nginx(edge):
            hls = f"{edge.https_url}/hls/x"
            async with client.get(f"{hls}/index.m3u8") as r:
                assert r.status == 200
                assert r.content_type == "application/vnd.apple.mpegurl"
                assert r.headers["X-Cache-Status"] == "MISS"
                assert await r.read() == playlist

            statuses = []
            for _ in range(2):
                headers = {"Authorization": "Bearer viewer-token", "Cookie": "lectern_session=abc"}
                async with client.get(f"{hls}/seg_00001.m4s?t=1", headers=headers) as r:
                    assert r.status == 200
                    assert await r.read() == segment
                    statuses.append(r.headers["X-Cache-Status"])
            assert statuses == ["MISS", "HIT"]
            fetched = origin.paths(f"/{BUCKET}/hls/x/seg_00001.m4s")
            assert len(fetched) == 1, "the second fetch of a segment reached the object store"
            assert fetched[0]["Host"] == s3_address
            assert "Authorization" not in fetched[0]
            assert "Cookie" not in fetched[0]

            # A live playlist is refreshed from the store within seconds; a segment never is.
            origin.objects["hls/x/index.m3u8"] = (
                playlist + b"seg_00002.m4s\n",
                "application/vnd.apple.mpegurl",
            )
            origin.objects["hls/x/seg_00001.m4s"] = (b"rewritten", "video/iso.segment")

            async def playlist_updated() -> bool:
                async with client.get(f"{hls}/index.m3u8") as r:
                    return (await r.read()).endswith(b"seg_00002.m4s\n")

            await wait_until(playlist_updated, timeout_s=10, interval_s=0.2, message="playlist refresh")
            async with client.get(f"{hls}/seg_00001.m4s") as r:
                assert r.headers["X-Cache-Status"] == "HIT"
                assert await r.read() == segment

            async with client.get(f"{hls}/missing.m4s") as r:
                assert r.status == 404
            async with client.put(f"{hls}/seg_00001.m4s", data=b"overwrite") as r:
                assert r.status == 403
            assert all(method == "GET" for method, _path, _headers in origin.requests)
