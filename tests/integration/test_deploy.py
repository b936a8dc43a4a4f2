"""The deployment files: docker-compose.yml wires every service Lectern needs with known settings (a
private bucket, coturn denying every private range), and the nginx template renders into a config that
really serves static files and proxies the app and its WebSockets, serves cached HLS only to viewers the
app grants it (auth_request), passes no decoded path upstream and sends the security headers on every
answer (nginx run unprivileged over loopback, in front of a real server on local storage or radosgw)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import tomllib
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
from yarl import URL

from infra import media_access
from infra.objects import ObjectStore
from infra.objects_local import LocalObjectStore
from infra.objects_s3 import S3ObjectStore
from infra.settings import env_names, from_env
from tests.helpers import free_port, wait_until, wait_until_sync
from tests.integration.conftest import S3Service, remove_bucket, unique_bucket_name
from tests.server import TEST_SECRET_KEY, LecternServer, running_server

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


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
    assert nginx["NGX_PUBLIC_URL"] == app["LECTERN_PUBLIC_URL"]
    assert not any(name.startswith("NGX_S3") for name in nginx), "nginx reaches media only through the app"
    # The app believes forwarded addresses from nginx alone: its fixed address on the compose network.
    nginx_address = ipaddress.ip_address(services["nginx"]["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert nginx_address in subnet
    assert app["LECTERN_TRUSTED_PROXIES"] == str(nginx_address)

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


def test_the_bucket_has_no_anonymous_access(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["minio-init"]["command"])
    assert "anonymous set none" in script
    for line in script.splitlines():
        if "anonymous" in line or "policy" in line:
            assert not re.search(r"anonymous set (download|public|upload)|anonymous set-json", line), line


# Addresses a TURN relay must never reach on a server's behalf (RFC 6890 special-purpose ranges).
DENIED_PEERS = [
    "0.0.0.0",
    "0.255.255.255",
    "10.1.2.3",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.168.1.1",
    "198.18.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:127.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "febf::1",
]
ALLOWED_PEERS = ["203.0.113.9", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2001:db8::1", "2400:3200::1"]


def coturn_denied_ranges(
    compose: dict[str, Any],
) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    ranges = []
    for arg in compose["services"]["coturn"]["command"]:
        if str(arg).startswith("--denied-peer-ip="):
            low, _, high = str(arg).removeprefix("--denied-peer-ip=").partition("-")
            ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    return ranges


@pytest.mark.parametrize("address", DENIED_PEERS)
def test_coturn_denies_relaying_to_private_and_special_addresses(
    compose: dict[str, Any], address: str
) -> None:
    ip = ipaddress.ip_address(address)
    assert any(low.version == ip.version and low <= ip <= high for low, high in coturn_denied_ranges(compose))


def test_coturn_still_relays_to_public_addresses(compose: dict[str, Any]) -> None:
    ranges = coturn_denied_ranges(compose)
    for address in ALLOWED_PEERS:
        ip = ipaddress.ip_address(address)
        assert not any(low.version == ip.version and low <= ip <= high for low, high in ranges), address


def test_coturn_reads_every_denied_range_of_the_compose_file(compose: dict[str, Any], tmp_path: Path) -> None:
    """The real turnserver parses each range (a typo would be a range it silently lacks)."""
    program = shutil.which("turnserver") or "/usr/bin/turnserver"
    if not Path(program).exists():
        pytest.skip("turnserver is not installed")
    denied = [str(a) for a in compose["services"]["coturn"]["command"] if str(a).startswith("--denied")]
    argv = [program, "-n", "--no-cli", "--listening-ip=127.0.0.1", f"--listening-port={free_port()}",
            f"--userdb={tmp_path / 'db'}", "--log-file=stdout", "--simple-log", *denied]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        try:
            lines: list[str] = []
            assert process.stdout is not None
            while len([line for line in lines if "Black listing:" in line]) < len(denied):
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
                assert "Wrong address format" not in line, "".join(lines)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_dockerfile_migrates_then_serves_and_copies_only_what_exists() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#")
    assert "FROM python:3.11-slim" in text
    assert 'CMD ["sh", "-c", "lectern migrate && exec lectern serve"]' in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_copies_every_package_the_app_is_built_from() -> None:
    """The image runs `pip install -e .`: every package pyproject includes must be in it (integrations/ was
    once left out, and the app failed at startup on its first import)."""
    text = (REPO / "Dockerfile").read_text()
    copied = {line.split()[1].rstrip("/") for line in text.splitlines() if line.startswith("COPY ")}
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in include["include"]}
    assert packages
    assert packages <= copied, sorted(packages - copied)


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
def rendered_edge(tls: tuple[Path, Path], app_upstream: str) -> Iterator[Edge]:
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
    with rendered_edge(tls_files, f"127.0.0.1:{free_port()}") as edge:
        result = subprocess.run(nginx_argv(edge, "-t"), capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
        conf = edge.conf.read_text()
        assert not render_nginx.PLACEHOLDER.search(conf)
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            assert f"{temp}_temp_path {edge.prefix}/" in conf


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--app-upstream", "127.0.0.1:1; include /etc/passwd"),
        ("--public-url", "https://x}"),
        ("--server-name", ""),
    ],
    ids=["semicolon", "brace", "empty"],
)
def test_renderer_refuses_values_that_would_change_the_config_syntax(
    tls_files: tuple[Path, Path], tmp_path: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "--prefix": str(tmp_path),
        "--app-upstream": "127.0.0.1:1",
        "--tls-cert": str(tls_files[0]),
        "--tls-key": str(tls_files[1]),
        "--out": str(tmp_path / "n.conf"),
        "--public-url": "https://x",
        "--server-name": "_",
    }
    argv[option] = value
    assert render_nginx.main([x for kv in argv.items() for x in kv]) == 2
    assert "unsafe" in capsys.readouterr().err
    assert not (tmp_path / "n.conf").exists()


# --- upstreams for the running edge -----------------------------------------------------------------


@dataclass
class FakeApp:
    """Stands in for the app where a test must see exactly what nginx sends upstream: every request is
    remembered; /hls-auth grants everything (so any refusal is nginx's own), /hls/ answers a segment."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.raw_path, dict(request.headers)))
        if request.path == "/hls-auth":
            return web.Response(status=200, headers={"X-Lectern-Person": "1"})
        return web.Response(body=b"segment", content_type="video/iso.segment")

    def media_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [(path, headers) for _m, path, headers in self.requests if path != "/hls-auth"]


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
async def fake_app() -> AsyncIterator[tuple[FakeApp, str]]:
    upstream = FakeApp()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    async with serving(app) as address:
        yield upstream, address


@pytest.fixture
async def client(tls_files: tuple[Path, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that trusts only the test certificate (real TLS verification against nginx)."""
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


def media_cookie(session_id: int, person_id: int) -> dict[str, str]:
    """The header a browser sends once the catalog granted `person_id` the session's media."""
    value = media_access.issue(TEST_SECRET_KEY, person_id, session_id, "learner", time.time())
    return {"Cookie": f"{media_access.COOKIE}={value}"}


def raw_url(url: str) -> URL:
    """A URL sent exactly as written: no client-side normalisation or re-escaping."""
    return URL(url, encoded=True)


# --- the running edge -----------------------------------------------------------------------------


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


def assert_security_headers(r: aiohttp.ClientResponse, what: str) -> None:
    for name in (*SECURITY_HEADERS, "Strict-Transport-Security"):
        assert len(r.headers.getall(name, [])) == 1, f"{what}: {name} {r.headers.getall(name, [])}"
    assert r.headers["X-Content-Type-Options"] == "nosniff", what
    assert r.headers["X-Frame-Options"] == "DENY", what
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], what
    assert r.headers["Strict-Transport-Security"].startswith("max-age="), what
    assert r.headers.get("Server", "nginx") == "nginx", f"{what}: the Server header names a version"


async def test_nginx_proxies_the_app_and_serves_static_files(
    tls_files: tuple[Path, Path], tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    with (
        running_server(tmp_path / "var") as app,
        rendered_edge(tls_files, f"127.0.0.1:{app.port}") as edge,
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
    tls_files: tuple[Path, Path], client: aiohttp.ClientSession
) -> None:
    echo = web.Application()
    echo.router.add_get("/ws/echo", ws_echo)
    async with serving(echo) as address:
        with rendered_edge(tls_files, address) as edge, running_nginx(edge):
            wss = edge.https_url.replace("https://", "wss://")
            async with client.ws_connect(f"{wss}/ws/echo") as ws:
                await ws.send_str("你好")
                assert await ws.receive_str(timeout=5) == "echo:你好"
                await ws.send_str("second")
                assert await ws.receive_str(timeout=5) == "echo:second"


async def test_nginx_tells_the_app_the_client_address_and_scheme_and_drops_forged_ones(
    tls_files: tuple[Path, Path], fake_app: tuple[FakeApp, str], client: aiohttp.ClientSession
) -> None:
    upstream, address = fake_app
    with rendered_edge(tls_files, address) as edge, running_nginx(edge):
        forged = {"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66", "X-Forwarded-Proto": "http"}
        async with client.get(f"{edge.https_url}/api/courses", headers=forged) as r:
            assert r.status == 200
        ((_method, path, headers),) = upstream.requests
        assert path == "/api/courses"
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        assert headers["X-Real-IP"] == "127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "https"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/hls/7/r1/x%0d%0aX-Evil:%201.m4s", id="crlf-header"),
        pytest.param("/hls/7/r1/x%0aX-Evil:1/seg.m4s", id="lf-header"),
        pytest.param("/hls/7/%3Flist-type=2", id="escaped-query"),
        pytest.param("/hls/7/r1/camera/seg_000001.m4s%3Fx=1", id="escaped-query-after-key"),
        pytest.param("/hls/%37/r1/camera/seg_000001.m4s", id="escaped-session"),
        pytest.param("/hls/7/r1/../../8/r1/index.m3u8", id="dot-dot"),
        pytest.param("/hls/7//r1/index.m3u8", id="double-slash"),
        pytest.param("/hls/7/r1/index.m3u8%00", id="nul"),
    ],
)
async def test_nginx_refuses_escaped_media_paths_before_anything_reaches_upstream(
    tls_files: tuple[Path, Path], fake_app: tuple[FakeApp, str], client: aiohttp.ClientSession, path: str
) -> None:
    upstream, address = fake_app
    with rendered_edge(tls_files, address) as edge, running_nginx(edge):
        async with client.get(raw_url(f"{edge.https_url}{path}"), headers=media_cookie(7, 1)) as r:
            assert r.status == 400, await r.text()
        # The store never saw the request: no media fetch, not even an auth check.
        assert upstream.requests == []


async def test_nginx_passes_the_media_path_as_received_without_its_query(
    tls_files: tuple[Path, Path], fake_app: tuple[FakeApp, str], client: aiohttp.ClientSession
) -> None:
    upstream, address = fake_app
    with rendered_edge(tls_files, address) as edge, running_nginx(edge):
        url = f"{edge.https_url}/hls/7/r1/camera/seg_000001.m4s?list-type=2&prefix=hls"
        cookie = media_cookie(7, 1)
        async with client.get(url, headers={**cookie, "Authorization": "Bearer x"}) as r:
            assert r.status == 200
            assert await r.read() == b"segment"
        [(path, headers)] = upstream.media_requests()
        assert path == "/hls/7/r1/camera/seg_000001.m4s", "the query string reached the upstream"
        assert "Authorization" not in headers
        assert headers["Cookie"] == cookie["Cookie"]
        auth = [h for _m, p, h in upstream.requests if p == "/hls-auth"]
        assert auth, "nginx served media without asking the app"
        assert auth[0]["X-Original-URI"] == "/hls/7/r1/camera/seg_000001.m4s?list-type=2&prefix=hls"


# --- media through nginx, the real app and its object store ------------------------------------------


SESSION = 7
RECORDING = "r1_Ab-9"
MEDIA = {
    "replay playlist": (
        f"hls/{SESSION}/{RECORDING}/camera/index.m3u8",
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-ENDLIST\n",
    ),
    "replay segment": (f"hls/{SESSION}/{RECORDING}/camera/seg_000001.m4s", bytes(range(256)) * 64),
    "init segment": (f"hls/{SESSION}/{RECORDING}/camera/init.mp4", b"\x00\x00\x00\x18ftypiso6" * 10),
    "MP4 download": (f"hls/{SESSION}/{RECORDING}/camera.mp4", bytes(range(255, -1, -1)) * 300),
    "live playlist": (f"hls/{SESSION}/live_1/screen/index.m3u8", b"#EXTM3U\n#EXT-X-VERSION:7\n"),
    "live segment": (f"hls/{SESSION}/live_1/screen/seg_000003.m4s", b"live" * 1000),
}


@dataclass
class MediaStack:
    edge: Edge
    server: LecternServer
    store: ObjectStore


@pytest.fixture(params=["local", "radosgw"])
async def media_stack(
    request: pytest.FixtureRequest, tls_files: tuple[Path, Path], tmp_path: Path
) -> AsyncIterator[MediaStack]:
    """nginx in front of a real `lectern serve` whose media lie in its local folder or in radosgw (a
    private bucket: nothing in it is readable anonymously)."""
    data_dir = tmp_path / "var"
    env: dict[str, str] = {}
    store: ObjectStore
    bucket = ""
    s3: S3Service | None = None
    if request.param == "radosgw":
        s3 = request.getfixturevalue("s3_service")
        bucket = unique_bucket_name()
        store = S3ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, bucket, region="us-east-1")
        env = {"S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": s3.access_key, "S3_SECRET_KEY": s3.secret_key,
               "S3_BUCKET": bucket, "S3_REGION": "us-east-1"}  # fmt: skip
    else:
        store = LocalObjectStore(data_dir / "objects", signing_key="unused", base_url="http://127.0.0.1")
    try:
        for key, body in MEDIA.values():
            await store.put(key, body)
        with (
            running_server(data_dir, env) as server,
            rendered_edge(tls_files, f"127.0.0.1:{server.port}") as edge,
            running_nginx(edge),
        ):
            yield MediaStack(edge, server, store)
    finally:
        await store.close()
        if s3 is not None:
            remove_bucket(s3, bucket)


async def test_media_through_nginx_is_refused_without_a_grant_and_shared_by_the_granted(
    media_stack: MediaStack, client: aiohttp.ClientSession
) -> None:
    base = media_stack.edge.https_url
    for kind, (key, body) in MEDIA.items():
        url = f"{base}/{key}"
        async with client.get(url) as r:
            assert r.status == 401, f"anonymous {kind}: {r.status}"
            assert body not in await r.read()
        async with client.get(url, headers=media_cookie(SESSION + 1, 5)) as r:
            assert r.status == 403, f"another session's viewer, {kind}: {r.status}"
        async with client.get(url, headers={"Cookie": f"{media_access.COOKIE}=forged.x"}) as r:
            assert r.status == 401, f"forged grant, {kind}: {r.status}"
        statuses = []
        for person in (1, 2):  # two viewers of one lecture: the second is served from nginx's cache
            async with client.get(url, headers=media_cookie(SESSION, person)) as r:
                assert r.status == 200, f"granted {kind}: {r.status}"
                assert await r.read() == body, kind
                statuses.append(r.headers["X-Cache-Status"])
                assert_security_headers(r, kind)
        assert statuses[0] == "MISS", kind
        if not key.endswith(".m3u8"):
            assert statuses[1] == "HIT", f"{kind}: the second viewer's copy did not come from the cache"
        # A refusal after a grant: the cached copy is not handed out without a grant either.
        async with client.get(url) as r:
            assert r.status == 401, f"anonymous after the cache filled, {kind}"
        async with client.get(f"{url}?list-type=2") as r:
            assert r.status == 401, f"anonymous with a query, {kind}"
    access = (media_stack.edge.prefix / "access.log").read_text()
    assert re.search(r"GET /hls/7/r1_Ab-9/camera/seg_000001.m4s HTTP/1.1\" 200 .* person=1$", access, re.M)
    assert re.search(r"GET /hls/7/r1_Ab-9/camera/seg_000001.m4s HTTP/1.1\" 200 .* person=2$", access, re.M)


async def test_a_live_playlist_is_refreshed_within_seconds_and_a_segment_never(
    media_stack: MediaStack, client: aiohttp.ClientSession
) -> None:
    base = media_stack.edge.https_url
    playlist_key, playlist = MEDIA["live playlist"]
    segment_key, segment = MEDIA["live segment"]
    viewer = media_cookie(SESSION, 1)
    for key in (playlist_key, segment_key):
        async with client.get(f"{base}/{key}", headers=viewer) as r:
            assert r.status == 200
    await media_stack.store.put(playlist_key, playlist + b"seg_000004.m4s\n")
    await media_stack.store.put(segment_key, b"rewritten")

    async def playlist_updated() -> bool:
        async with client.get(f"{base}/{playlist_key}", headers=viewer) as r:
            return (await r.read()).endswith(b"seg_000004.m4s\n")

    await wait_until(playlist_updated, timeout_s=10, interval_s=0.2, message="playlist refresh")
    async with client.get(f"{base}/{segment_key}", headers=viewer) as r:
        assert r.headers["X-Cache-Status"] == "HIT"
        assert await r.read() == segment
    async with client.put(f"{base}/{segment_key}", data=b"overwrite", headers=viewer) as r:
        assert r.status == 403


async def test_security_headers_are_on_pages_api_static_files_media_and_errors(
    media_stack: MediaStack, client: aiohttp.ClientSession
) -> None:
    base = media_stack.edge.https_url
    answers = {
        "page": (f"{base}/", 200, {}),
        "API": (f"{base}/api/courses", 200, {}),
        "API error": (f"{base}/api/courses/999999", 404, {}),
        "static file": (f"{base}/static/style.css", 200, {}),
        "media": (f"{base}/{MEDIA['replay segment'][0]}", 200, media_cookie(SESSION, 1)),
        "media refused": (f"{base}/{MEDIA['replay segment'][0]}", 401, {}),
        "bad media path": (f"{base}/hls/7/%3Fx", 400, {}),
    }
    for what, (url, status, headers) in answers.items():
        async with client.get(raw_url(url), headers=headers) as r:
            assert r.status == status, f"{what}: {r.status}"
            assert_security_headers(r, what)
    async with client.get(f"{base}/") as r:
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with client.get(f"{media_stack.edge.http_url}/healthz") as r:
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in r.headers, "HSTS over plain HTTP"


def test_nginx_sends_the_apps_content_security_policy_for_pages(tls_files: tuple[Path, Path]) -> None:
    """Where the app says nothing (static files, nginx's own errors), nginx's CSP is the app's."""
    security_headers = pytest.importorskip("infra.security_headers")
    template = (REPO / "nginx" / "nginx.conf.template").read_text()
    assert f'"{security_headers.PAGE_CSP}"' in template
    assert f'"{security_headers.OTHER_CSP}"' in template
