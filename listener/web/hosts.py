"""Which Host names the dashboard answers to: the defence against DNS rebinding.

A web page on ``attacker.example`` can make its own name resolve to 127.0.0.1; the browser
then sends the page's requests to the dashboard as same-origin, with ``Host: attacker.example``,
and lets the page read the answers (the queue, a form's CSRF token). Refusing every Host that
is not a loopback name or a configured one stops that: the attacker controls the name, never
which names we accept. The check runs before anything else, with or without a token.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

from flask import Response, request

from listener.web.context import settings

log = logging.getLogger(__name__)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_PORT = re.compile(r"[0-9]{1,5}")
_LOGGED_MAX = 100  # distinct refused names logged per process: a hostile page cannot flood logs
_logged: set[str] = set()


def host_name(header: str) -> str | None:
    """The name of a Host header, lower case, without port or trailing dot
    ('Example.org:8765' → 'example.org', '[::1]:80' → '::1'); None when it is malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        name, closed, rest = value[1:].partition("]")
        if not closed:
            return None
    else:
        name, colon, rest = value.partition(":")
        rest = colon + rest
    if rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:])):
        return None
    return name.rstrip(".") or None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def normalise(names: Iterable[str]) -> frozenset[str]:
    """Configured names as :func:`is_allowed` compares them: lower case, no port or trailing
    dot, addresses in their short form ('[::1]', 'Listener.Internal.', 'fe80:0::1')."""
    out: set[str] = set()
    for name in names:
        ip = _ip(name)
        found = str(ip) if ip is not None else host_name(name)
        if found:
            out.add(found)
    return frozenset(out)


def is_allowed(name: str | None, extra: frozenset[str]) -> bool:
    """Loopback names and addresses (127.0.0.0/8, ::1) and the configured names."""
    if name is None:
        return False
    ip = _ip(name)
    if ip is None:
        return name in LOOPBACK_NAMES or name in extra
    return ip.is_loopback or str(ip) in extra


def check_host() -> Response | None:
    """Refuse a request whose Host is not ours (421), before authentication or any page.

    A request without a Host header (HTTP/1.0) comes from no browser, so it cannot be a
    rebinding page: it is served.
    """
    header = request.environ.get("HTTP_HOST")
    if header is None:
        return None
    name = host_name(header)
    if is_allowed(name, settings().allowed_hosts):
        return None
    _log_once(name)
    return Response("This dashboard does not answer to that host name. Open it as "
                    "http://127.0.0.1:PORT/ or list the name in serve.allowed_hosts.\n", 421,
                    mimetype="text/plain")


def _log_once(name: str | None) -> None:
    shown = (name or "(malformed)")[:80]
    if shown in _logged or len(_logged) >= _LOGGED_MAX:
        return
    _logged.add(shown)
    log.warning("dashboard: refused requests for host %r (not loopback and not in "
                "serve.allowed_hosts or serve.public_url)", shown)
