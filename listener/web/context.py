"""What every request handler needs: the settings, this request's database, the clock."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app, g
from sqlite_utils import Database

from listener.core.models import Clock, utcnow
from storage.tx import connect

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebSettings:
    """What the app needs from the configuration; ``secret`` signs CSRF tokens (per process).

    ``allowed_hosts``: Host names served besides loopback ones (lower case, no port);
    ``trusted_proxies``: peers whose X-Forwarded-For/-Proto are believed; ``secure_cookies``:
    mark cookies Secure whatever the request's scheme (TLS ends at a proxy we do not trust).
    """

    database: Path
    token: str | None = field(default=None, repr=False)
    clock: Clock = utcnow
    brand_words: frozenset[str] = frozenset()  # brand names/query words: left out of top terms
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    allowed_hosts: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = ()
    secure_cookies: bool = False


def settings() -> WebSettings:
    return current_app.extensions["listener"]  # type: ignore[no-any-return]


def get_db() -> Database:
    """This request's connection, opened on first use and closed when the request ends
    (sqlite3 connections must not cross threads, and waitress serves from a thread pool)."""
    if "db" not in g:
        g.db = connect(settings().database)
    return g.db  # type: ignore[no-any-return]


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def now() -> datetime:
    return settings().clock()


def actor() -> str:
    """Who made a change, as far as we can tell: the API (bearer token) or the dashboard."""
    return "api" if g.get("via") == "api" else "dashboard"
