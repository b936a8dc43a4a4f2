"""Render nginx/nginx.conf.template into a runnable nginx.conf (tests, hosts without Docker).

docker-compose.yml fills the same template with the nginx image's envsubst step; this script does the
same substitution of `${NGX_...}` placeholders, but strictly: a placeholder without a value, a value
for no placeholder, or a value that could inject nginx syntax is an error.

    python scripts/render_nginx.py --prefix /srv/nginx --app-upstream 127.0.0.1:8080 \
        --tls-cert cert.pem --tls-key key.pem --out /srv/nginx/nginx.conf
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "nginx" / "nginx.conf.template"
PLACEHOLDER = re.compile(r"\$\{(NGX_[A-Z0-9_]+)\}")
# nginx syntax characters and whitespace would let a value end a directive or open a block.
UNSAFE = re.compile(r"[\s;{}'\"#\\]")


class RenderError(ValueError):
    """The template cannot be filled with the given values; the message names the placeholders."""


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every `${NGX_...}` placeholder of `template` from `values`."""
    needed = placeholders(template)
    missing = sorted(needed - values.keys())
    unused = sorted(values.keys() - needed)
    if missing:
        raise RenderError(f"no value for: {', '.join(missing)}")
    if unused:
        raise RenderError(f"not in the template: {', '.join(unused)}")
    unsafe = sorted(name for name, value in values.items() if not value or UNSAFE.search(value))
    if unsafe:
        raise RenderError(f"empty or unsafe value for: {', '.join(unsafe)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def values_from_args(args: argparse.Namespace) -> dict[str, str]:
    prefix = Path(args.prefix).resolve()
    public_url = args.public_url or f"https://{args.server_name if args.server_name != '_' else 'localhost'}"
    if args.https_port != 443 and not args.public_url:
        public_url += f":{args.https_port}"
    return {
        "NGX_PREFIX": str(prefix),
        "NGX_APP_UPSTREAM": args.app_upstream,
        "NGX_HTTP_PORT": str(args.http_port),
        "NGX_HTTPS_PORT": str(args.https_port),
        "NGX_SERVER_NAME": args.server_name,
        "NGX_PUBLIC_URL": public_url.rstrip("/"),
        "NGX_TLS_CERT": str(Path(args.tls_cert).resolve()),
        "NGX_TLS_KEY": str(Path(args.tls_key).resolve()),
        "NGX_STATIC_DIR": str(Path(args.static_dir).resolve()),
        "NGX_MAX_BODY": args.max_body,
        "NGX_MIME_TYPES": args.mime_types,
        "NGX_ACCESS_LOG": args.access_log or str(prefix / "access.log"),
        "NGX_ERROR_LOG": args.error_log or str(prefix / "error.log"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--prefix", required=True, help="directory for pid, temp paths, cache and logs")
    p.add_argument("--app-upstream", required=True, help="host:port of `lectern serve`")
    p.add_argument("--http-port", type=int, default=80)
    p.add_argument("--https-port", type=int, default=443)
    p.add_argument("--server-name", default="_")
    p.add_argument("--public-url", default="", help="where plain HTTP redirects (LECTERN_PUBLIC_URL)")
    p.add_argument("--tls-cert", required=True, help="PEM certificate chain")
    p.add_argument("--tls-key", required=True, help="PEM private key")
    p.add_argument("--static-dir", default=str(REPO / "static"))
    p.add_argument("--max-body", default="64m", help="client_max_body_size")
    p.add_argument("--mime-types", default="/etc/nginx/mime.types")
    p.add_argument("--access-log", default="", help="default: PREFIX/access.log")
    p.add_argument("--error-log", default="", help="default: PREFIX/error.log")
    p.add_argument("--template", default=str(TEMPLATE))
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text = render(Path(args.template).read_text(), values_from_args(args))
    except RenderError as exc:
        print(f"render_nginx: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
