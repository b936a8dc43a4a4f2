"""The client's address: forwarded headers count only from trusted proxies, read from the right."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from infra.client_address import client_address, parse_address
from infra.settings import SettingsError, from_env

NGINX = ("10.0.0.2",)
PROXIES = ("10.0.0.0/24", "fd00::/8")


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "expected"),
    [
        ("203.0.113.7", [], (), "203.0.113.7"),
        # Nobody is trusted by default: whatever the caller writes is ignored.
        ("203.0.113.7", [("X-Forwarded-For", "198.51.100.1")], (), "203.0.113.7"),
        ("203.0.113.7", [("X-Real-IP", "198.51.100.1")], (), "203.0.113.7"),
        # A peer that is not a trusted proxy cannot speak for anyone else.
        ("203.0.113.7", [("X-Forwarded-For", "198.51.100.1")], NGINX, "203.0.113.7"),
        ("10.0.0.2", [("X-Forwarded-For", "198.51.100.1")], NGINX, "198.51.100.1"),
        ("10.0.0.2", [("X-Real-IP", "198.51.100.1")], NGINX, "198.51.100.1"),
        # X-Forwarded-For wins over X-Real-IP (which names only the last hop's peer).
        ("10.0.0.2", [("X-Real-IP", "10.0.0.9"), ("X-Forwarded-For", "198.51.100.1")], NGINX, "198.51.100.1"),
        # The client wrote the left part itself: the right-most untrusted address is the client.
        ("10.0.0.2", [("X-Forwarded-For", "1.1.1.1, 198.51.100.1")], NGINX, "198.51.100.1"),
        ("10.0.0.2", [("X-Forwarded-For", "1.1.1.1, 198.51.100.1, 10.0.0.3")], PROXIES, "198.51.100.1"),
        # A header sent twice is one list, in order.
        (
            "10.0.0.2",
            [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.1")],
            NGINX,
            "198.51.100.1",
        ),
        # Garbage written by the client is left of the address nginx appended.
        ("10.0.0.2", [("X-Forwarded-For", "<script>, 198.51.100.1")], NGINX, "198.51.100.1"),
        # Garbage right of every untrusted address: the last proxy that spoke is all we know.
        ("10.0.0.2", [("X-Forwarded-For", "1.1.1.1, nonsense, 10.0.0.3")], PROXIES, "10.0.0.3"),
        ("10.0.0.2", [("X-Forwarded-For", "")], NGINX, "10.0.0.2"),
        # Everyone on the way is trusted: the left-most is the client (an internal caller).
        ("10.0.0.2", [("X-Forwarded-For", "10.0.0.5, 10.0.0.3")], PROXIES, "10.0.0.5"),
        # Ports and brackets as some proxies write them; IPv6 and IPv4-mapped peers.
        ("10.0.0.2", [("X-Forwarded-For", "198.51.100.1:5678")], NGINX, "198.51.100.1"),
        ("10.0.0.2", [("X-Forwarded-For", "[2001:db8::1]:443")], NGINX, "2001:db8::1"),
        ("fd00::2", [("X-Forwarded-For", "2001:db8::1")], PROXIES, "2001:db8::1"),
        ("::ffff:10.0.0.2", [("X-Forwarded-For", "198.51.100.1")], NGINX, "198.51.100.1"),
        ("::ffff:203.0.113.7", [], (), "203.0.113.7"),
        # Not an IP peer (a Unix socket): as it is.
        (None, [("X-Forwarded-For", "198.51.100.1")], NGINX, ""),
    ],
    ids=[
        "plain-peer",
        "xff-ignored-by-default",
        "real-ip-ignored-by-default",
        "xff-from-untrusted-peer-ignored",
        "xff-from-trusted-proxy",
        "real-ip-from-trusted-proxy",
        "xff-before-real-ip",
        "rightmost-untrusted",
        "two-trusted-hops",
        "header-sent-twice",
        "garbage-on-the-left",
        "garbage-behind-a-trusted-hop",
        "empty-xff",
        "all-trusted",
        "ipv4-with-port",
        "bracketed-ipv6-with-port",
        "ipv6-proxy",
        "ipv4-mapped-proxy",
        "ipv4-mapped-peer",
        "no-ip-peer",
    ],
)
def test_client_address(
    peer: str | None, headers: list[tuple[str, str]], trusted: tuple[str, ...], expected: str
) -> None:
    assert client_address(peer, CIMultiDict(headers), trusted) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("unknown", None),
        ("1.2.3.4.5", None),
        ("[::1", None),
    ],
    ids=["plain", "spaces", "word", "too-many-parts", "unclosed-bracket"],
)
def test_parse_address(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == expected


def test_trusted_proxies_setting_takes_addresses_and_networks() -> None:
    settings = from_env({"LECTERN_TRUSTED_PROXIES": "172.18.0.0/16, 10.0.0.2,::1"})
    assert settings.trusted_proxies == ("172.18.0.0/16", "10.0.0.2", "::1")


def test_a_trusted_proxy_that_is_no_address_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"LECTERN_TRUSTED_PROXIES.*nginx"):
        from_env({"LECTERN_TRUSTED_PROXIES": "nginx"})
