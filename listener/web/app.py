"""The dashboard's Flask application: one factory, one blueprint per page group.

Templates autoescape everything; nothing untrusted is ever marked safe.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from listener.web import security
from listener.web.context import WebSettings, close_db
from listener.web.params import RowIdConverter, http_url, short_time
from storage.db import open_db

__all__ = ["WebSettings", "create_app"]


def create_app(config: WebSettings) -> Flask:
    """Build the app; the database is migrated once here, not on every request."""
    open_db(config.database).close()
    app = Flask(__name__)
    app.extensions["listener"] = config
    app.url_map.converters["rowid"] = RowIdConverter
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
    app.teardown_appcontext(close_db)
    app.register_error_handler(HTTPException, _http_error)
    return app


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
    """Plain pages for people, JSON for API clients (messages escaped by the template)."""
    code = exc.code or 500
    message = exc.description or exc.name
    if request.path.startswith(("/api/", "/export/")):
        return jsonify({"error": message, "status": code}), code
    return render_template("error.html", code=code, name=exc.name, message=message), code
