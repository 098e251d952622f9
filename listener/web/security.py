"""Access token, CSRF protection and security headers for every request.

- With ``serve.token`` set, every request — pages, API, exports and static files — needs
  ``Authorization: Bearer TOKEN`` or the session cookie the login form sets (HttpOnly,
  SameSite=Strict, signed with the token, 7 days). People are redirected to the login form;
  API clients and assets get 401.
- Every state-changing request is a POST whose form carries a CSRF token: an HMAC, under a
  per-process secret, of a random cookie ("signed double submit"). Signing matters on
  127.0.0.1: cookies ignore ports, so another local web app could plant the cookie, but it
  cannot compute the HMAC. Requests authenticated by the bearer header need no CSRF token
  (a browser never adds that header across sites).
- Headers: a CSP without inline scripts or styles, nosniff, no framing, no referrer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import Blueprint, Flask, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from listener.web.context import now, settings

SESSION_COOKIE = "listener_session"
CSRF_COOKIE = "listener_csrf"
SESSION_MAX_AGE = 7 * 24 * 3600
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_MACHINE_PATHS = ("/api/", "/export/", "/static/")
bp = Blueprint("auth", __name__)


def install(app: Flask) -> None:
    app.before_request(_authenticate)
    app.before_request(_check_csrf)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["login_required"] = lambda: _token() is not None
    app.register_blueprint(bp)


def _token() -> str | None:
    return settings().token


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def session_value(token: str, issued: int) -> str:
    return f"{issued}.{_sign(token.encode(), f'session:{issued}')}"


def _valid_session(token: str, value: str, now: int) -> bool:
    issued = value.partition(".")[0]
    if not issued.isdigit() or not 0 <= now - int(issued) < SESSION_MAX_AGE:
        return False
    return _same(value, session_value(token, int(issued)))


def _now_ts() -> int:
    return int(now().timestamp())


def _authenticate() -> BaseResponse | None:
    token = _token()
    if token is None:
        g.via = "local"
        return None
    if request.endpoint == "auth.login":
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _same(header[7:].strip(), token):
        g.via = "api"
        return None
    if _valid_session(token, request.cookies.get(SESSION_COOKIE, ""), _now_ts()):
        g.via = "session"
        return None
    if request.method == "GET" and not request.path.startswith(_MACHINE_PATHS):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    response = Response("authentication required: send 'Authorization: Bearer <token>'\n", 401,
                        mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'Bearer realm="listener"'
    return response


def csrf_token() -> str:
    """The token forms carry; creates this browser's CSRF cookie on first use."""
    if "csrf_cookie" not in g:
        g.csrf_cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return _sign(settings().secret, g.csrf_cookie)


def _check_csrf() -> None:
    if request.method != "POST" or request.endpoint == "auth.login" or g.get("via") == "api":
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.form.get("csrf", "")
    if not cookie or not sent or not _same(sent, _sign(settings().secret, cookie)):
        abort(400, "This form's security token is missing or stale: reload the page and try again.")


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if "csrf_cookie" in g and request.cookies.get(CSRF_COOKIE) != g.csrf_cookie:
        response.set_cookie(CSRF_COOKIE, g.csrf_cookie, httponly=True, samesite="Strict",
                            secure=request.is_secure)
    return response


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to; anything else (other hosts, ``//x``, ``/\\x``) → default."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return default


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    token = _token()
    target = safe_next(request.values.get("next"))
    if token is None:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target, failed=False)
    if not _same(request.form.get("token", ""), token):
        return render_template("login.html", next=target, failed=True), 401
    response = redirect(target)
    response.set_cookie(SESSION_COOKIE, session_value(token, _now_ts()), max_age=SESSION_MAX_AGE,
                        httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.post("/logout")
def logout() -> Any:
    response = redirect(url_for("auth.login"))
    response.delete_cookie(SESSION_COOKIE)
    return response
