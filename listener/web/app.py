"""The dashboard's Flask application: one factory, one blueprint per page group.

Every request passes the same guards, in this order: the Host check, who is there
(``listener.web.identity``), what their role allows (``listener.web.roles``), the CSRF token
(``listener.web.security``). Templates autoescape everything; nothing untrusted is ever
marked safe.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from listener.web import identity, roles, security
from listener.web.context import WebSettings, close_db, who
from listener.web.hosts import check_host
from listener.web.params import RowIdConverter, http_url, short_time
from listener.web.proxy import TrustedProxies
from listener.web.throttle import Cooldown, Throttle
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
    _guard(app, config)
    from listener.web import admin, alerts, feedback, login, overview, posts, queue, replies

    for module in (login, overview, queue, posts, alerts, feedback, admin, replies):
        app.register_blueprint(module.bp)
    app.teardown_appcontext(close_db)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _guard(app: Flask, config: WebSettings) -> None:
    """The checks every request passes, in order, and what templates need of them."""
    app.wsgi_app = TrustedProxies(app.wsgi_app, config.trusted_proxies)  # type: ignore[method-assign]
    app.extensions["listener_throttle"] = Throttle()
    app.extensions["listener_cooldown"] = Cooldown()
    for check in (check_host, identity.authenticate, roles.check, security.check_csrf):
        app.before_request(check)
    app.after_request(security.headers)
    app.jinja_env.globals.update(csrf_token=security.csrf_token, who=who, can=roles.can)


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
