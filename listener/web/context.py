"""What every request handler needs: the settings, this request's database, the clock, and who
is there (:class:`Who`, set by :mod:`listener.web.identity` before any view runs)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app, g
from sqlite_utils import Database

from listener.core.models import Clock, utcnow
from storage.tx import connect

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ReplyAccount:
    """A configured reply account as the pages need it: which posts it can answer."""

    name: str
    platform: str
    brands: frozenset[str] | None  # None: every brand's posts

    def answers(self, platform: str | None, brand: str | None) -> bool:
        return platform == self.platform and (self.brands is None or brand in self.brands)


@dataclass(frozen=True)
class InboxRules:
    """The team's targets (config ``inbox``): first response per brand, when a post is stale,
    whose replies need an admin's approval, and the accounts replies go out with."""

    first_response: timedelta = timedelta(hours=4)
    brand_first_response: Mapping[str, timedelta] = field(default_factory=dict)
    stale_after: timedelta = timedelta(days=7)
    reply_approval: frozenset[str] = frozenset()
    reply_accounts: tuple[ReplyAccount, ...] = ()

    def account_for(self, platform: str | None, brand: str | None) -> ReplyAccount | None:
        """The account that answers this post, or None ("copy the reply and open the post")."""
        return next((a for a in self.reply_accounts if a.answers(platform, brand)), None)


@dataclass(frozen=True)
class WebSettings:
    """What the app needs from the configuration; ``secret`` signs CSRF tokens (per process).

    ``allowed_hosts``: Host names served besides loopback ones (lower case, no port);
    ``trusted_proxies``: peers whose X-Forwarded-For/-Proto are believed; ``secure_cookies``:
    mark cookies Secure whatever the request's scheme (TLS ends at a proxy we do not trust).
    ``sso_header``: the header a single-sign-on proxy names the person in, believed only from
    a direct peer in ``sso_proxies``; ``sso_default_role``: the role of a person it names who
    is not a user yet (None: such a person is refused).
    """

    database: Path
    token: str | None = field(default=None, repr=False)
    clock: Clock = utcnow
    brand_words: frozenset[str] = frozenset()  # brand names/query words: left out of top terms
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    allowed_hosts: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = ()
    secure_cookies: bool = False
    sso_header: str | None = None
    sso_proxies: tuple[Network, ...] = ()
    sso_default_role: str | None = None
    inbox: InboxRules = field(default_factory=InboxRules)


ROLE_RANK = {"viewer": 0, "agent": 1, "admin": 2}  # storage.users.ROLES, least to most


@dataclass(frozen=True)
class Who:
    """Who makes this request: ``actor`` is what the audit log and ``post_status.by`` say (a
    user's name, ``token`` for the shared token, ``local`` with no log-in at all); ``via`` is
    how they proved it (local, api, session, sso); ``user_id`` is None but for named users."""

    actor: str
    role: str
    via: str
    user_id: int | None = None

    def can(self, role: str) -> bool:
        """Whether this person's role is ``role`` or above."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


LOCAL = Who("local", "admin", "local")  # no token and no users: as before people existed


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


def who() -> Who | None:
    """Who this request is from; None before authentication decided (the login page)."""
    found: Who | None = g.get("who")
    return found


def actor() -> str:
    """The name a change is recorded under: the user's, ``token`` or ``local``."""
    found = who()
    return found.actor if found is not None else "anonymous"
