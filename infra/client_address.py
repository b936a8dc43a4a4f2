"""The real client address of a request: the peer, or what trusted proxies say the peer was.

`X-Forwarded-For` and `X-Real-IP` are written by whoever sends them, so they count only when the direct
peer is one of the operator's proxies (`LECTERN_TRUSTED_PROXIES`). Each proxy appends the address it was
called from to `X-Forwarded-For`; reading from the right, the first address that is not a trusted proxy
is the client (anything further left was written by that client and proves nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Headers(Protocol):
    """What is read of the request's headers (a multidict: a header may be sent more than once)."""

    def getall(self, key: str, default: list[str]) -> list[str]: ...


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8`, `192.168.1.7`, `::1` ... as networks; ValueError naming an entry that is neither."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    # Settings hold the strings; parsing them once per distinct setting keeps requests cheap.
    return parse_networks(entries)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:443`), or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(peer: str | None, headers: Headers, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy that forwarded one.

    With no trusted proxies (the default) the headers are never read. A peer that is not an IP address
    (a Unix socket) is returned as it is, or as "" when there is none.
    """
    address = parse_address(peer or "")
    if address is None:
        return peer or ""
    networks = _networks(trusted_proxies) if trusted_proxies else ()
    if not _trusted(address, networks):
        return str(address)
    hops = [hop for value in headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    if not hops:
        hops = headers.getall("X-Real-IP", [])[-1:]
    for hop in reversed(hops):
        forwarded = parse_address(hop)
        if forwarded is None:
            break  # garbage from the trusted proxy itself: the last address it vouched for stands
        address = forwarded
        if not _trusted(address, networks):
            break
    return str(address)
