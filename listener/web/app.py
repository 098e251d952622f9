"""The dashboard's Flask application: one factory, one blueprint per page group.

Requests get their own SQLite connection (connections must not cross threads, and waitress
serves from a thread pool). Templates autoescape everything; nothing untrusted is marked safe.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlite_utils import Database
from werkzeug.exceptions import HTTPException

from listener.models import Clock, utcnow
from listener.web import security
from listener.web.params import http_url, short_time
from storage.db import open_db
from storage.tx import connect


@dataclass(frozen=True)
class WebSettings:
    """What the app needs from the configuration; ``secret`` signs CSRF tokens (per process)."""

    db_path: Path
    token: str | None = None
    clock: Clock = utcnow
    brand_words: frozenset[str] = frozenset()  # brand names/query words: left out of top terms
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)


def settings() -> WebSettings:
    from flask import current_app

    return current_app.extensions["listener"]  # type: ignore[no-any-return]


def get_db() -> Database:
    """This request's connection, opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = connect(settings().db_path)
    return g.db  # type: ignore[no-any-return]


def now() -> datetime:
    return settings().clock()


def actor() -> str:
    """Who made a change, as far as we can tell: the API (bearer token) or the dashboard."""
    return "api" if g.get("via") == "api" else "dashboard"


def create_app(config: WebSettings) -> Flask:
    """Build the app; the database is migrated once here, not on every request."""
    open_db(config.db_path).close()
    app = Flask(__name__)
    app.extensions["listener"] = config
    app.jinja_env.autoescape = True  # every template, whatever its file name
    app.jinja_env.filters.update(
        ts=short_time, pct=_pct, num=lambda n: f"{n:,}" if n is not None else "–",
        http_url=http_url, change=_change, points=_points,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    security.install(app)
    from listener.web import alerts, feedback, overview, posts, queue

    for module in (overview, queue, posts, alerts, feedback):
        app.register_blueprint(module.bp)
    app.teardown_appcontext(_close_db)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _close_db(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _change(current: int, before: int) -> str:
    """Relative change, '+12 %'; 'new' when there was nothing before."""
    if not before:
        return "new" if current else "±0 %"
    return f"{100 * (current - before) / before:+.0f} %"


def _points(current: float | None, before: float | None) -> str:
    """Difference of two shares in percentage points."""
    if current is None or before is None:
        return "–"
    return f"{100 * (current - before):+.1f} pts"


def _http_error(exc: HTTPException) -> Any:
    """Plain pages for people, JSON for API clients; the message never echoes raw input."""
    code = exc.code or 500
    message = exc.description or exc.name
    if request.path.startswith(("/api/", "/export/")):
        return jsonify({"error": message, "status": code}), code
    return render_template("error.html", code=code, name=exc.name, message=message), code
