"""Where sources and sinks connect: the endpoints their settings name, and a guard at the
socket that keeps a block of network calls away from private addresses nobody configured.

Some clients follow redirects and offer no way to stop it (slack_sdk opens every request with
urllib's default opener), and a redirect to ``169.254.169.254`` or another port of this
machine is how a hostile server reads what it should not (SSRF). Sources check every hop in
their HTTP clients (:mod:`listener.core.httpguard`); this guard is the floor below, for every
client alike: a process-wide audit hook (PEP 578) sees each ``socket.connect`` of a thread inside
:func:`only_to` and refuses an address that is not globally routable unless a configured
endpoint's host is (or resolves to) it, or the block allows private networks. Dispatch wraps
every delivery attempt in it. :func:`endpoints` also tells ``listener doctor`` what to probe.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

URL_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
TLS_SCHEMES = frozenset({"https", "wss", "tls"})
# settings a plugin ignores in some modes: probing them would fail a set-up that works
_UNUSED: dict[tuple[str, str], Callable[[Any], bool]] = {
    # webhook mode: no Web API call
    ("slack", "base_url"): lambda c: getattr(c, "webhook_url", None) is not None,
    # logged in: searches go through the account's PDS, found at login
    ("bluesky", "base_url"): lambda c: bool(getattr(c, "handle", None)),
    ("bluesky", "login_url"): lambda c: not getattr(c, "handle", None),  # public AppView
}



@dataclass(frozen=True)
class Endpoint:
    """One host and port a source or sink connects to."""

    scheme: str  # http, https, ws, wss; tcp or tls for a host/port setting (SMTP)
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES

    def __str__(self) -> str:
        """``scheme://host:port`` only: a path, query or user part may be the secret."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"



def endpoints(settings: BaseModel) -> list[Endpoint]:
    """Every host a source's or sink's settings make it talk to, in order, once each: each
    field holding an http(s) URL or a list of them (base_url, url, webhook_url, feeds, …), a
    ``url`` property (a Zendesk subdomain's), and a ``host`` with a ``port`` (SMTP: TLS from the
    start when ``security`` is ``ssl``; STARTTLS is the sink's own check). Settings the plugin
    ignores in its configured mode (:data:`_UNUSED`) are left out."""
    kind = str(getattr(settings, "type", ""))
    found: list[Endpoint] = []
    for name in type(settings).model_fields:
        unused = _UNUSED.get((kind, name))
        if unused is not None and unused(settings):
            continue
        value = getattr(settings, name)
        found += [e for v in (value if isinstance(value, list) else [value])
                  if (e := endpoint_of(v)) is not None]
    if isinstance(getattr(type(settings), "url", None), property):
        found += [e for e in [endpoint_of(settings.url)] if e is not None]  # type: ignore[attr-defined]
    host, port = getattr(settings, "host", None), getattr(settings, "port", None)
    if isinstance(host, str) and isinstance(port, int) and host:
        scheme = "tls" if getattr(settings, "security", None) == "ssl" else "tcp"
        found.append(Endpoint(scheme, host, port))
    return list(dict.fromkeys(found))


def endpoint_of(value: object) -> Endpoint | None:
    """The endpoint of an http(s)/ws(s) URL; None for anything else."""
    if not isinstance(value, str) or "://" not in value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a port that is not a number: the plugin's own validation says so
        return None
    scheme = parts.scheme.lower()
    if scheme not in URL_PORTS or not parts.hostname:
        return None
    return Endpoint(scheme, parts.hostname, port or URL_PORTS[scheme])


RESOLVE_TTL = 60.0  # seconds a configured host's addresses are trusted before a new lookup
_local = threading.local()
_resolved: dict[tuple[str, int], tuple[float, frozenset[tuple[str, int]]]] = {}
_lock = threading.Lock()
_installed = False


def forbidden(address: str) -> bool:
    """Not a globally routable unicast address (loopback, private, link-local, metadata …);
    IPv4 inside IPv6 is judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False  # not an IP address (a Unix socket path): not ours to judge
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_unspecified


def _addresses(endpoint: Endpoint) -> frozenset[tuple[str, int]]:
    """The (address, port) pairs a configured endpoint stands for, looked up at most every
    :data:`RESOLVE_TTL` seconds; a host that does not resolve stands for nothing."""
    key = (endpoint.host, endpoint.port)
    with _lock:
        cached = _resolved.get(key)
    if cached is not None and time.monotonic() - cached[0] < RESOLVE_TTL:
        return cached[1]
    host = endpoint.host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, endpoint.port, proto=socket.IPPROTO_TCP)
        found = frozenset((str(info[4][0]), endpoint.port) for info in infos)
    except (OSError, UnicodeError):
        found = frozenset()
    with _lock:
        _resolved[key] = (time.monotonic(), found)
    return found


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    policy = getattr(_local, "policy", None)
    if policy is None or len(args) < 2 or not isinstance(args[1], tuple):
        return
    allowed, allow_private, owner = policy
    address, port = str(args[1][0]), int(args[1][1])
    if allow_private or not forbidden(address) or (address, port) in allowed:
        return
    raise ConnectionRefusedError(
        f"{owner}: refused to connect to {address}:{port}, a private or local address no "
        "setting names (a redirect there is how a server reaches what it should not)")


def install() -> None:
    """Install the audit hook once (it cannot be removed; idle outside :func:`only_to`)."""
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


@contextmanager
def only_to(configured: Sequence[Endpoint], owner: str, *, allow_private: bool = False
            ) -> Iterator[None]:
    """The block may connect to public addresses and to the ``configured`` endpoints; any
    other private address is refused (``ConnectionRefusedError`` from the connect)."""
    install()
    allowed = frozenset().union(*(_addresses(e) for e in configured)) if configured else \
        frozenset()
    outer = getattr(_local, "policy", None)
    _local.policy = (allowed, allow_private, owner)
    try:
        yield
    finally:
        _local.policy = outer


def private_allowed(settings: BaseModel) -> bool:
    """Whether a plugin's settings open private networks to it (``allow_private_network``,
    ``allow_private``)."""
    return any(bool(getattr(settings, name, False))
               for name in ("allow_private_network", "allow_private"))
