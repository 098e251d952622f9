"""Host check, access token, sessions, throttling, CSRF protection and security headers.

- Every request first passes the Host check (``listener.web.hosts``): only loopback names and
  the configured ones are served, token or not, which stops DNS rebinding.
- With ``serve.token`` set, every request — pages, API, exports and static files — needs
  ``Authorization: Bearer TOKEN`` or the session cookie the login form sets (HttpOnly,
  SameSite=Strict, Secure over https, a random id signed with the token, 7 days). The session
  lives in the database (``listener.web.sessions``): logging out ends it for good. People are
  redirected to the login form; API clients and assets get 401. Wrong tokens, at the form or
  in a Bearer header, are throttled per client address (``listener.web.throttle``): 429 with
  Retry-After.
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
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from listener.web import sessions
from listener.web.context import WebSettings, get_db, now, settings
from listener.web.hosts import check_host
from listener.web.proxy import TrustedProxies
from listener.web.sessions import SESSION_MAX_AGE
from listener.web.throttle import Throttle, client_key

log = logging.getLogger(__name__)
SESSION_COOKIE = "listener_session"
CSRF_COOKIE = "listener_csrf"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_MACHINE_PATHS = ("/api/", "/export/", "/static/")
bp = Blueprint("auth", __name__)


def install(app: Flask) -> None:
    config: WebSettings = app.extensions["listener"]
    app.wsgi_app = TrustedProxies(app.wsgi_app, config.trusted_proxies)  # type: ignore[method-assign]
    app.extensions["listener_throttle"] = Throttle()
    app.before_request(check_host)
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


def secure_cookies() -> bool:
    """Mark cookies Secure: the browser came over https (as a trusted proxy tells, see
    ``listener.web.proxy``) or the configuration says TLS is always in front."""
    return settings().secure_cookies or request.is_secure


def _throttle() -> Throttle:
    return current_app.extensions["listener_throttle"]  # type: ignore[no-any-return]


def _client() -> str:
    return client_key(request.remote_addr)


def _try_token(sent: str, token: str) -> int | None:
    """Check a token someone sent, counting the try against their address: None when it is
    right, 0 when wrong, else the seconds until they may try again (they are throttled, and
    are not told whether this one was right)."""
    client, at = _client(), now().timestamp()
    wait = _throttle().take(client, at)
    if wait:
        return wait
    if _same(sent, token):
        _throttle().give_back(client, at)
        return None
    if _throttle().exhausted(client, at):
        log.warning("dashboard: too many wrong tokens from %s: throttled", client)
    return 0


def _too_many(wait: int) -> Response:
    response = Response(f"too many wrong tokens from this address: try again in {wait} s\n",
                        429, mimetype="text/plain")
    response.headers["Retry-After"] = str(wait)
    return response


def _unauthorized() -> Response:
    response = Response("authentication required: send 'Authorization: Bearer <token>'\n", 401,
                        mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'Bearer realm="listener"'
    return response


def _authenticate() -> BaseResponse | None:
    token = _token()
    if token is None:
        g.via = "local"
        return None
    if request.endpoint == "auth.login":
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        wait = _try_token(header[7:].strip(), token)
        if wait is None:
            g.via = "api"
            return None
        return _too_many(wait) if wait else _unauthorized()
    if sessions.is_valid(get_db(), token, request.cookies.get(SESSION_COOKIE, ""), now()):
        g.via = "session"
        return None
    if request.method == "GET" and not request.path.startswith(_MACHINE_PATHS):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _unauthorized()


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
                            secure=secure_cookies())
    return response


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to; anything else (other hosts, ``//x``, ``/\\x``) → default.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so
    ``/\\t/evil.example`` is ``//evil.example`` to them (and a newline cannot go in a header at
    all): a value with a control character or a backslash is refused whole.
    """
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    return default if parts.scheme or parts.netloc else value


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    token = _token()
    target = safe_next(request.values.get("next"))
    if token is None:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", next=target, failed=False, wait=0)
    wait = _try_token(request.form.get("token", ""), token)
    if wait:
        page = render_template("login.html", next=target, failed=False, wait=wait)
        return page, 429, {"Retry-After": str(wait)}
    if wait is not None:
        return render_template("login.html", next=target, failed=True, wait=0), 401
    response = redirect(target)
    session = sessions.start(get_db(), now())
    response.set_cookie(SESSION_COOKIE, sessions.cookie_value(token, session),
                        max_age=SESSION_MAX_AGE, httponly=True, samesite="Strict",
                        secure=secure_cookies())
    return response


@bp.post("/logout")
def logout() -> Any:
    """End this browser's session on the server too: a copy of the cookie stops working."""
    token = _token()
    if token is not None:
        sessions.revoke(get_db(), token, request.cookies.get(SESSION_COOKIE, ""), now())
    response = redirect(url_for("auth.login"))
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="Strict",
                           secure=secure_cookies())
    return response
