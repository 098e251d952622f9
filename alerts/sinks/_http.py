"""HTTP plumbing that several sinks share, so each rule lives in one place.

GitHub, Jira, Slack, Discord, the generic webhook and Zendesk all send a credential with every
request (a token, Basic credentials, or a URL that *is* the secret). The pieces below are the
parts whose logic is the same for all of them: refusing base URLs that would send the credential
in clear, building the client (:func:`sink_client`: one timeout, no redirect followed, and no
more of an answer read than :func:`capped_options` allows, the network guard of
:mod:`listener.core.httpguard`, which every source uses too), mapping httpx's network failures
to retryable :class:`DeliveryError` without the cause (which may hold the credential), keeping
secrets out of log records and exception text, and reading a JSON object from an answer that
may not be one. Per-service wording (advice, rate-limit rules, error bodies) stays in each sink.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from listener.core.errors import DeliveryError
from listener.core.httpguard import httpx_options, sink_policy
from listener.core.log import redact, register_secret

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""Hosts where plain http is allowed: only tests talk to them."""


# -- base URLs ---------------------------------------------------------------------------------


def has_controls(url: str) -> bool:
    """True when ``url`` holds whitespace or a control character (header/log injection)."""
    return any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url)


def split_url(url: str, key: str) -> SplitResult:
    """``urlsplit`` whose failures (also on reading the host) name the config key, not the URL."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises ValueError for a malformed host or port
    except ValueError:
        raise ValueError(f"{key} is not a valid URL") from None
    return parts


def https_or_local(url: str, key: str, parts: SplitResult) -> str:
    """``url`` when its scheme is https (or http to 127.0.0.1/localhost); else ValueError.

    The credential travels with every request, so plain http would send it in clear over a
    network; tests alone talk http to a local fake.
    """
    host = parts.hostname
    scheme = parts.scheme.lower()
    if scheme == "https" or (scheme == "http" and host in LOCAL_HOSTS):
        return url
    raise ValueError(
        f"{key} must use https (got '{scheme}://' for host '{host}'); "
        "plain http is only allowed for 127.0.0.1/localhost in tests"
    )


def https_base_url(url: str, key: str) -> str:
    """A bare https base URL (plain http only for 127.0.0.1/localhost, i.e. tests)."""
    url = url.strip().rstrip("/")
    if has_controls(url):
        raise ValueError(f"{key} must not contain spaces or control characters")
    parts = split_url(url, key)
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{key} must be a plain URL such as https://host/ (no user, query, #)")
    return https_or_local(url, key, parts)


# -- requests and answers ----------------------------------------------------------------------


def capped_options(owner: str) -> dict[str, Any]:
    """``httpx.Client`` keyword arguments that read at most ``SINK_MAX_BYTES`` of any answer.

    A destination that answers with an endless or enormous body (a hostile or broken proxy in
    front of Jira, say) then fails that attempt with a retryable :class:`DeliveryError` naming
    ``owner`` instead of filling memory. Sinks follow no redirects, so the guard's address
    check has nothing to do here; proxies from the environment are still used.
    """
    return httpx_options(sink_policy(owner))


def sink_client(
    owner: str,
    *,
    timeout: float,
    headers: dict[str, str],
    base_url: str = "",
    auth: httpx.Auth | None = None,
) -> httpx.Client:
    """The ``httpx.Client`` of an HTTP sink: ``timeout`` seconds to connect and to answer, no
    redirect followed (the sink maps a 3xx: following it could carry the credential to another
    host), and answers capped by :func:`capped_options` (a refusal names ``owner``)."""
    return httpx.Client(
        base_url=base_url, auth=auth, headers=headers, timeout=httpx.Timeout(timeout),
        follow_redirects=False, **capped_options(owner),
    )


def request(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    where: str,
    service: str,
    action: str,
    timeout: float,
    maybe_done: str = "",
    **kwargs: Any,
) -> httpx.Response:
    """One request; network failures become DeliveryErrors without the cause.

    ``from None`` drops the cause: its text and frames can hold the credential. A timeout or a
    network error is retryable (``maybe_done`` tells the operator what a retry does about a
    request that may have landed); a URL httpx cannot use is not.
    """
    try:
        return client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        what = f"no answer to {action} within {timeout:g}s{maybe_done}"
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError):
        raise DeliveryError(f"{where}: base_url cannot be used", retryable=False) from None
    except httpx.RequestError as exc:
        detail = redact(f"{type(exc).__name__}: {exc}")[:200]
        what = f"could not reach {service} ({detail}); check network, DNS, proxy and TLS"
    raise DeliveryError(f"{where}: {what}", retryable=True) from None


def answer_error(
    where: str, status: int, action: str, snippet: str, *, retryable: bool, advice: str
) -> DeliveryError:
    """``<where>: HTTP <status> from <action>: <what the service said> — <advice>``.

    The issue trackers (GitHub, Jira) word an unwanted answer the same way, so an operator reads
    the service's own text and what to do about it in one line.
    """
    said = f": {snippet}" if snippet else ""
    return DeliveryError(
        f"{where}: HTTP {status} from {action}{said} — {advice}",
        status=status, body_snippet=snippet, retryable=retryable,
    )


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when the body is not JSON or not an object."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# -- secrets -----------------------------------------------------------------------------------


def basic_credentials(user: str, password: str) -> str:
    """The base64 credentials ``httpx.BasicAuth(user, password)`` sends: a secret of its own,
    to register (:func:`register_secrets`) and mask together with the password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def register_secrets(secrets: Iterable[str]) -> None:
    """Register each secret with :mod:`listener.core.log`, whose handler-level filter redacts them."""
    for secret in secrets:
        register_secret(secret)


def mask_secrets(text: str, secrets: tuple[str, ...], mask: str) -> str:
    """``text`` with every secret replaced by ``mask`` (longest secrets should come first)."""
    for secret in secrets:
        text = text.replace(secret, mask)
    return text


class RedactFilter(logging.Filter):
    """Masks secrets in the records of one logger, before *any* handler sees them.

    Attached to the logger a client library writes to, so it also covers handlers that
    :mod:`listener.core.log` does not install (pytest's caplog included), unlike a handler filter.
    """

    def __init__(self, secrets: tuple[str, ...], mask: str) -> None:
        super().__init__()
        self.secrets = secrets
        self.mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = mask_secrets(message, self.secrets, self.mask)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True
