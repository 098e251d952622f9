"""Host check, access token, throttling, CSRF protection and security headers: the pieces the
request guards are built from (``listener.web.app`` installs them, in order).

- Every request first passes the Host check (``listener.web.hosts``): only loopback names and
  the configured ones are served, token or not, which stops DNS rebinding.
- Then ``listener.web.identity`` decides who is there: ``Authorization: Bearer TOKEN`` (the
  shared ``serve.token``), a single-sign-on proxy's header, or the session cookie the login
  form sets (``listener.web.login``: HttpOnly, SameSite=Strict, Secure over https, a random id
  signed with the token, 7 days, kept in the database so that logging out ends it). Wrong
  tokens and passwords, at the form or in a Bearer header, are throttled per client address
  (``listener.web.throttle``): 429 with Retry-After. ``listener.web.roles`` then decides what
  that person may do.
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
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, request

from listener.web.context import now, settings
from listener.web.throttle import Cooldown, Throttle, client_key

log = logging.getLogger(__name__)
SESSION_COOKIE = "listener_session"
CSRF_COOKIE = "listener_csrf"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MACHINE_PATHS = ("/api/", "/export/", "/static/")  # answered 401, never sent to the login form


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def secure_cookies() -> bool:
    """Mark cookies Secure: the browser came over https (as a trusted proxy tells, see
    ``listener.web.proxy``) or the configuration says TLS is always in front."""
    return settings().secure_cookies or request.is_secure


def throttle() -> Throttle:
    """The app's login throttle (wrong tokens and passwords count against the same bucket)."""
    return current_app.extensions["listener_throttle"]  # type: ignore[no-any-return]


def cooldown() -> Cooldown:
    """The app's limiter for audit entries about refused requests."""
    return current_app.extensions["listener_cooldown"]  # type: ignore[no-any-return]


def client() -> str:
    """The key the client's tries count against (``listener.web.throttle.client_key``)."""
    return client_key(request.remote_addr)


def try_token(sent: str, token: str) -> int | None:
    """Check a token someone sent, counting the try against their address: None when it is
    right, 0 when wrong, else the seconds until they may try again (they are throttled, and
    are not told whether this one was right)."""
    key, at = client(), now().timestamp()
    wait = throttle().take(key, at)
    if wait:
        return wait
    if _same(sent, token):
        throttle().give_back(key, at)
        return None
    if throttle().exhausted(key, at):
        log.warning("dashboard: too many wrong tokens from %s: throttled", key)
    return 0


def too_many(wait: int) -> Response:
    response = Response(f"too many wrong tokens from this address: try again in {wait} s\n",
                        429, mimetype="text/plain")
    response.headers["Retry-After"] = str(wait)
    return response


def unauthorized() -> Response:
    response = Response("authentication required: send 'Authorization: Bearer <token>'\n", 401,
                        mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'Bearer realm="listener"'
    return response


def csrf_token() -> str:
    """The token forms carry; creates this browser's CSRF cookie on first use."""
    if "csrf_cookie" not in g:
        g.csrf_cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return _sign(settings().secret, g.csrf_cookie)


def check_csrf() -> None:
    if request.method != "POST" or request.endpoint == "auth.login" or g.get("via") == "api":
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.form.get("csrf", "")
    if not cookie or not sent or not _same(sent, _sign(settings().secret, cookie)):
        abort(400, "This form's security token is missing or stale: reload the page and try again.")


def headers(response: Response) -> Response:
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
