"""Generic webhook destination: POST each alert as signed JSON, for anything else (httpx).

The request. ``POST <url>`` with the JSON of :mod:`alerts.render.webhook` (a post alert, or a
report: a spike, a digest, alerts held over quiet hours) and three headers:
``X-Listener-Id: <alert id>`` (stable across retries: receivers dedupe on it),
``X-Listener-Timestamp: <unix seconds>`` and ``X-Listener-Signature: sha256=<hex>``, the
HMAC-SHA256 with the configured ``secret`` over the bytes ``<timestamp>.<raw body>``.

How a receiver verifies (before parsing the JSON)::

    ts = request.headers["X-Listener-Timestamp"]
    if abs(time.time() - int(ts)) > 300:                      # stale: a replayed request
        return 401
    mac = hmac.new(SECRET, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest("sha256=" + mac, request.headers["X-Listener-Signature"]):
        return 401
    if seen(request.headers["X-Listener-Id"]):                 # a retry after a lost answer
        return 200, {"id": earlier_receipt}
    return 200, {"id": new_receipt}                            # optional: stored as remote id

Exactly-once effect belongs to the receiver: listener retries after a timeout or a dropped
connection, and the same alert then arrives again with the same ``X-Listener-Id`` (a new
timestamp and signature). Receivers that keep seen ids for longer than listener's retry horizon
(``dispatch.backoff_max`` × ``max_attempts``) see each alert once; others may see duplicates.

SSRF (PLATFORMS.md): the URL must be https unless ``allow_insecure_http``; its host is resolved
at *every* send (DNS can change after start-up) and the request goes to the address that was
checked (the TLS name and the Host header stay the configured host), so a second lookup cannot
swap in another address. Any address that is not globally routable (private, loopback,
link-local such as 169.254.169.254, unspecified, shared, reserved, multicast, or such an IPv4
address inside IPv6: :func:`listener.core.httpguard.forbidden_address`, the rule every source's
redirects are checked against too) is refused unless ``allow_private_network``. Redirects are
never followed, and proxies from the environment are not used (they would connect to a name,
not the checked address). The URL may carry a token (path or query), so it is treated as a
secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, model_validator

from alerts.render.common import strip_controls
from alerts.render.webhook import report_payload, webhook_payload
from alerts.sinks._http import RedactFilter, has_controls, mask_secrets, register_secrets
from alerts.sinks.base import SinkConfig, error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, RateLimited
from listener.core.httpguard import Resolver, forbidden_address, resolve_host
from listener.core.httpguard import literal_host as _literal_host
from listener.core.models import AlertMessage, Clock, ReportMessage, to_iso, utcnow

__all__ = ["WebhookSink", "WebhookSinkConfig", "forbidden_address", "resolve_host", "sign"]

ANSWER_MAX = 64 * 1024  # bytes of the receiver's answer we read; the rest is ignored
REDACTED = "[webhook-url]"
PERMANENT = frozenset({400, 401, 403, 404, 410, 422})
_ADVICE = {
    400: "the receiver refused the payload; check that it understands this format",
    401: "the receiver refused the signature: same secret on both sides? clocks in sync?",
    403: "the receiver refused the signature or the sender: check the secret and its allow-list",
    404: "nothing at this URL; fix url",
    410: "the receiver says this endpoint is gone; fix url",
    422: "the receiver refused the payload's content; check its logs",
}


class WebhookSinkConfig(SinkConfig):
    """POSTs signed JSON to one URL."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["webhook"] = Field("webhook", description="always 'webhook'")
    url: str = Field(repr=False, description='receiver URL, https; a secret ({"$env": NAME})')
    secret: str = Field(repr=False, min_length=16,
                        description='HMAC key, at least 16 characters ({"$env": NAME})')
    timeout: float = Field(10, gt=0, le=120, description="seconds to connect and to answer")
    min_interval: float = Field(0, ge=0, description="seconds between two requests")
    max_text_chars: int = Field(4000, ge=100, le=100_000, description="post text cut to this")
    include_chart: bool = Field(
        False, description="add a digest's chart (PNG, base64) to report payloads as chart_png"
    )
    allow_insecure_http: bool = Field(False, description="allow http:// (no TLS): tests only")
    allow_private_network: bool = Field(
        False, description="allow private/loopback/link-local targets (SSRF guard off)"
    )

    @model_validator(mode="after")
    def _check_url(self) -> WebhookSinkConfig:
        """Messages name the scheme and host, never the URL (its path may be the credential)."""
        if has_controls(self.url):
            raise ValueError("url must not contain spaces or control characters")
        try:
            parts = httpx.URL(self.url)
        except httpx.InvalidURL:
            raise ValueError("url is not a valid URL") from None
        host = parts.raw_host.decode("ascii")
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("url must be a full https:// URL")
        if parts.userinfo:
            raise ValueError("url must not hold a user or password; put a token in the path")
        if parts.scheme == "http" and not self.allow_insecure_http:
            raise ValueError(f"url must use https (got http:// for host '{host}'); "
                             "set allow_insecure_http: true only for tests")
        literal = _literal_host(host)
        if literal and forbidden_address(literal) and not self.allow_private_network:
            raise ValueError(f"url host '{host}' is not a public address; set "
                             "allow_private_network: true if that is intended")
        return self


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSink:
    """Delivers each alert as one signed POST; returns the receiver's ``id`` if it gives one."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[WebhookSinkConfig]] = WebhookSinkConfig
    type: ClassVar[str] = "webhook"

    def __init__(self, config: WebhookSinkConfig, *, clock: Clock = utcnow,
                 resolve: Resolver = resolve_host) -> None:
        """``clock`` stamps and signs; ``resolve`` looks the host up at each send."""
        self.name = config.name
        self.min_interval = config.min_interval
        self._config, self._clock, self._resolve = config, clock, resolve
        self._url = httpx.URL(config.url)
        self._host = self._url.raw_host.decode("ascii")
        tail = self._url.raw_path.decode("ascii")
        self._secrets = tuple(s for s in dict.fromkeys((config.url, tail, self._url.path))
                              if len(s) > 1)
        register_secrets((*self._secrets, config.secret))
        # Removes the URL (and its path and query) from httpx's records before any handler.
        self._filter = RedactFilter(self._secrets, REDACTED)
        logging.getLogger("httpx").addFilter(self._filter)
        # An explicit transport: no proxy from the environment (it would connect to the name,
        # not to the checked address), while SSL_CERT_FILE/SSL_CERT_DIR still apply.
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(retries=0), timeout=config.timeout,
            follow_redirects=False, headers={"User-Agent": "social-listener-webhook"},
        )

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, host={self._host!r})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """One signed POST to the checked address; raises RateLimited / DeliveryError."""
        now = self._clock()
        timestamp = str(int(now.timestamp()))
        config = self._config
        if isinstance(message, ReportMessage):
            payload = report_payload(message, to_iso(now), config.max_text_chars,
                                     config.include_chart)
        else:
            payload = webhook_payload(message, to_iso(now), config.max_text_chars)
        body = json.dumps(payload, separators=(",", ":")).encode("ascii")
        target = self._checked_target(message)
        headers = {
            "Host": self._url.netloc.decode("ascii"), "Content-Type": "application/json",
            "X-Listener-Id": message.alert_id, "X-Listener-Timestamp": timestamp,
            "X-Listener-Signature": sign(self._config.secret, timestamp, body),
        }
        request = self._client.build_request("POST", target, content=body, headers=headers,
                                             extensions={"sni_hostname": self._host})
        status, answer, response_headers = self._post(request, message)
        if 200 <= status < 300:
            return _receipt(answer)
        raise self._answer_error(status, answer, response_headers, message)

    def close(self) -> None:
        logging.getLogger("httpx").removeFilter(self._filter)
        self._client.close()

    def check(self) -> None:
        """``listener doctor``: nothing to check. A receiver has no endpoint but the one that
        acts on what it gets, so any test request would be a delivery."""
        return None

    def _checked_target(self, message: AlertMessage | ReportMessage) -> httpx.URL:
        """Resolve now and return the URL aimed at the first address, if every one is allowed."""
        port = self._url.port or (443 if self._url.scheme == "https" else 80)
        try:
            addresses = self._resolve(self._host, port)
        except OSError as exc:
            raise DeliveryError(f"{self._where(message)}: cannot resolve '{self._host}' "
                                f"({type(exc).__name__}); check DNS", retryable=True) from None
        if not addresses:
            raise DeliveryError(f"{self._where(message)}: '{self._host}' has no address")
        bad = [a for a in addresses if forbidden_address(a)]
        if bad and not self._config.allow_private_network:
            raise DeliveryError(
                f"{self._where(message)}: '{self._host}' resolves to {', '.join(bad[:3])}, not a "
                "public address; refused (SSRF guard). Set allow_private_network: true if the "
                "receiver is meant to be on a private network", retryable=False,
            )
        return self._url.copy_with(host=addresses[0])

    def _post(
        self, request: httpx.Request, message: AlertMessage | ReportMessage
    ) -> tuple[int, bytes, Any]:
        """Send and read at most ANSWER_MAX bytes of the answer; network errors are retryable."""
        where = self._where(message)
        try:
            response = self._client.send(request, stream=True)
            try:
                answer = b""
                for chunk in response.iter_bytes():
                    answer += chunk
                    if len(answer) >= ANSWER_MAX:
                        break
            finally:
                response.close()
        except httpx.TimeoutException:
            what = (f"no answer within {self._config.timeout:g}s; the receiver may have it "
                    "already, and will see the same X-Listener-Id again on retry")
        except httpx.TransportError as exc:
            what = f"could not reach the receiver ({type(exc).__name__}); check network and TLS"
        else:
            return response.status_code, answer[:ANSWER_MAX], response.headers
        raise DeliveryError(f"{where}: {what}", retryable=True) from None

    def _answer_error(self, status: int, answer: bytes, headers: Any,
                      message: AlertMessage | ReportMessage) -> Exception:
        """429 waits, permanent 4xx park, anything else retries (3xx: a redirect, not followed)."""
        where = self._where(message)
        retry_after = headers.get("Retry-After")
        if status == 429 or (status == 503 and retry_after is not None):
            wait = retry_after_seconds(retry_after)
            return RateLimited(f"{where}: rate-limited (HTTP {status}); retry in {wait:g}s", wait)
        text = answer.decode("utf-8", "replace")
        snippet = mask_secrets(strip_controls(" ".join(text.split())), self._secrets, REDACTED)
        retryable = error_for_status(status, snippet, permanent=PERMANENT).retryable
        if 300 <= status < 400:
            advice = "the receiver redirects (not followed); configure the final URL"
        elif retryable:
            advice = "the receiver or the network failed; dispatch will retry"
        else:
            advice = _ADVICE.get(status, "the receiver refused the alert; check its logs")
        return DeliveryError(f"{where}: HTTP {status}: {advice}", status=status,
                             body_snippet=snippet, retryable=retryable)

    def _where(self, message: AlertMessage | ReportMessage) -> str:
        return f"webhook destination '{self.name}' (alert {message.alert_id})"


def _receipt(answer: bytes) -> str | None:
    """The receiver's ``id`` when it answered a JSON object with one, else None."""
    try:
        body = json.loads(answer)
    except ValueError:
        return None
    receipt = body.get("id") if isinstance(body, dict) else None
    if isinstance(receipt, bool) or not isinstance(receipt, str | int):
        return None
    return strip_controls(str(receipt))[:200] or None
