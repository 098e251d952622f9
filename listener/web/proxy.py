"""The client's address and scheme behind reverse proxies we were told to trust.

Login throttling counts per client address, and cookies are marked ``Secure`` when the
browser came over https. Behind nginx or Caddy every request comes from the proxy's address,
over plain http; the proxy says who the client was (``X-Forwarded-For``) and how it came
(``X-Forwarded-Proto``). Anyone can send those headers, so they are believed only from the
addresses in ``serve.trusted_proxies``; from anyone else they are ignored.

The address the connection really came from is kept in the environ as ``PEER``: single sign-on
(``listener.web.sso``) believes its header only from that direct peer, never from an address a
forwarded header named.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from listener.web.context import Network

PEER = "listener.peer"  # environ key: the direct peer's address, before any rewriting
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    ip = _address(address)
    return ip is not None and any(ip in net for net in proxies)


def _header_values(environ: dict[str, Any], name: str) -> list[str]:
    return [v.strip() for v in environ.get(name, "").split(",") if v.strip()]


def client_address(environ: dict[str, Any], proxies: tuple[Network, ...]) -> str:
    """The first address, walking X-Forwarded-For from the right, that is not a trusted proxy:
    the hops a trusted proxy added are believed, whatever the client wrote before them is not."""
    peer = environ.get("REMOTE_ADDR", "")
    hops = _header_values(environ, "HTTP_X_FORWARDED_FOR")
    while hops and _trusted(peer, proxies):
        hop = hops.pop()
        if _address(hop) is None:
            break  # garbage in the chain: stop at the last proxy we believe
        peer = hop.strip("[]")
    return peer


def forwarded_https(environ: dict[str, Any], proxies: tuple[Network, ...]) -> bool:
    """Whether a trusted proxy says the client came over https (its own, rightmost value)."""
    proto = _header_values(environ, "HTTP_X_FORWARDED_PROTO")
    return bool(proto) and proto[-1].lower() == "https" and _trusted(
        environ.get("REMOTE_ADDR", ""), proxies)


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR and wsgi.url_scheme as the trusted proxies report them,
    so ``request.remote_addr`` and ``request.is_secure`` are right everywhere in the app."""

    def __init__(self, app: WsgiApp, proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.proxies = proxies

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        environ[PEER] = environ.get("REMOTE_ADDR", "")
        if self.proxies and _trusted(environ.get("REMOTE_ADDR", ""), self.proxies):
            https = forwarded_https(environ, self.proxies)
            environ["REMOTE_ADDR"] = client_address(environ, self.proxies)
            if https:
                environ["wsgi.url_scheme"] = "https"
        return self.app(environ, start_response)


def peer_address(environ: dict[str, Any]) -> str:
    """The address of the connection's other end (a proxy, or the client itself)."""
    return str(environ.get(PEER, environ.get("REMOTE_ADDR", "")))


def in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether an address lies in one of the networks (False for anything not an address)."""
    return _trusted(address, networks)
