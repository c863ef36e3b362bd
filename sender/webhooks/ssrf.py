"""Which addresses a tenant's webhook may reach: never our own network (SSRF).

A URL is checked when the endpoint is saved (its host resolved: a 422 if any address is
refused) and again before every request, and the request then goes to the very address that
was checked (``pinned``), so a DNS answer that changes in between (rebinding) cannot point the
worker at an internal service. ``allow_private`` (the ``webhook_allow_private_urls`` setting)
lifts the check for local development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

from hexcast.core.errors import InvalidInput

__all__ = ["IPAddress", "Target", "UnsafeUrl", "check_url", "refusal", "resolve_target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(InvalidInput):
    """The URL is malformed, does not resolve, or resolves to an address we refuse."""


class Target(NamedTuple):
    """Where one request goes: the URL's host (Host header, TLS name) and the checked address."""

    scheme: str
    host: str
    port: int
    address: IPAddress

    def pinned(self, url: str) -> str:
        """``url`` with its host replaced by the checked address (brackets for IPv6)."""
        parts = urlsplit(url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached (``"loopback"``, ``"private"``, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped)
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("private", address.is_private), ("reserved", address.is_reserved))
    for name, hit in checks:
        if hit:
            return name
    return None if address.is_global else "not public"


def check_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL with a host and no credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a URL: {exc}", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL must be http or https", field="url")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host", field="url")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must not carry credentials", field="url")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """The first address of ``url``'s host, after checking every address it resolves to."""
    scheme, host, port = check_url(url)
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise UnsafeUrl(f"{host} resolves to {address}, a {reason} address: refused",
                                field="url")
    return Target(scheme, host, port, addresses[0])


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"{host} does not resolve: {exc}", field="url") from None
    found = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0])
                               for info in infos))
    if not found:
        raise UnsafeUrl(f"{host} does not resolve", field="url")
    return found
