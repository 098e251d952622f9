"""slack_sdk's clients with the answer cap every other HTTP sink has (``SINK_MAX_BYTES``).

slack_sdk sends through urllib and reads every answer whole: a success's ``resp.read()``, an
error's ``e.read()``, and urllib itself a redirect's body, then decodes it to ``str``. A
destination (or a proxy in front of it) that answers with an enormous body would fill memory,
twice over, on every attempt. The clients offer no transport to plug in, so the subclasses below
replace the one method of each that opens a request and reads the answer
(``_perform_http_request_internal``, ``_perform_urllib_http_request_internal``,
``_upload_file``), opening it through an opener with :class:`CappedAnswers`: that urllib
processor refuses an answer whose ``Content-Length`` is over the cap at once, and hands every
other answer on with a body that fails once more than the cap has arrived; success, error
answer and redirect alike. The refusal is the guard's retryable
:class:`~listener.core.httpguard.DeliveryRefused` (:func:`~listener.core.httpguard.sink_policy`),
worded as for the httpx sinks; :func:`alerts.sinks.slack.errors.network_error` maps it.

Everything else stays slack_sdk's own: request building, proxies (``proxy`` or the environment),
``ssl``, timeouts, redirects (left to :mod:`listener.core.netguard`), logging, ``retry_handlers``,
and what each method returns. The replaced methods are private to slack_sdk: importing this
module fails loudly if a slack_sdk release drops one, rather than leaving answers uncapped.
"""

from __future__ import annotations

import logging
import urllib.request
from ssl import SSLContext
from typing import Any
from urllib.request import BaseHandler, HTTPSHandler, OpenerDirector, ProxyHandler, Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError
from slack_sdk.web.file_upload_v2_result import FileUploadV2Result
from slack_sdk.webhook import WebhookClient, WebhookResponse

from listener.core.httpguard import Origin, Policy, sink_policy

_PIECE = 64 * 1024
"""Bytes read at a time: the cap is checked between pieces, never past one piece."""

_REPLACED = ((WebhookClient, "_perform_http_request_internal"),
             (WebClient, "_perform_urllib_http_request_internal"),
             (WebClient, "_upload_file"))
for _cls, _name in _REPLACED:
    if not callable(getattr(_cls, _name, None)):  # pragma: no cover - a slack_sdk upgrade
        raise RuntimeError(
            f"slack_sdk's {_cls.__name__} has no {_name} any more: the Slack sinks cannot cap "
            "the answers they read; install a slack_sdk release that has it"
        )


class _CappedAnswer:
    """A urllib answer whose ``read`` fails once more than ``policy.max_bytes`` have arrived.

    Status, headers and the rest are the answer's own; reading other than through ``read`` (which
    is all slack_sdk and urllib use) is not offered, so nothing reads past the cap.
    """

    _UNCAPPED = frozenset({"fp", "read1", "readinto", "readinto1", "readline", "readlines",
                           "peek"})

    def __init__(self, inner: Any, policy: Policy, origin: Origin) -> None:
        self._inner, self._policy, self._origin = inner, policy, origin
        self._seen = 0

    def read(self, amt: int | None = None) -> bytes:
        """Like ``HTTPResponse.read``; a failed read (the refusal, a reset, a deadline's cut)
        closes the answer at once, so its socket is not left to the garbage collector."""
        try:
            return self._read(amt)
        except BaseException:
            self.close()
            raise

    def _read(self, amt: int | None) -> bytes:
        left = amt if amt is not None and amt >= 0 else None
        known = getattr(self._inner, "length", None)  # http.client's Content-Length left to read
        if left is None and isinstance(known, int) and self._seen + known <= self._policy.max_bytes:
            # Within the cap: read it as http.client does, which raises IncompleteRead when the
            # connection ends early (a piecewise read would take the truncated body for all).
            return self._count(self._inner.read())
        pieces: list[bytes] = []
        try:
            while left is None or left > 0:
                piece = self._count(self._inner.read(_PIECE if left is None else min(left, _PIECE)))
                if not piece:
                    break
                pieces.append(piece)
                if left is not None:
                    left -= len(piece)
        except BaseException:
            pieces.clear()  # the traceback keeps this frame: do not keep up to the cap with it
            raise
        return b"".join(pieces)

    def _count(self, piece: bytes) -> bytes:
        """``piece``, or the refusal once the answer has passed the cap (nothing more is read)."""
        self._seen += len(piece)
        if self._seen > self._policy.max_bytes:
            raise self._policy.too_large(self._origin)
        return piece

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        if name in self._UNCAPPED:
            raise AttributeError(f"{name}: read a capped answer with read()")
        return getattr(self._inner, name)


class CappedAnswers(BaseHandler):
    """A urllib response processor that caps every answer (see the module's docstring).

    It runs before urllib's ``HTTPErrorProcessor`` (order 1000), so the body that an
    ``HTTPError`` or the redirect handler reads is the capped one too.
    """

    handler_order = 500

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def http_response(self, request: Request, response: Any) -> _CappedAnswer:
        origin = Origin.of(request.full_url)
        try:
            self.policy.check_length(origin, getattr(response, "headers", None))
        except Exception:
            response.close()
            raise
        return _CappedAnswer(response, self.policy, origin)

    https_response = http_response


def capped_opener(policy: Policy, proxy: Any, ssl: SSLContext | None) -> OpenerDirector:
    """The opener slack_sdk builds (a ``proxy``, an ``ssl`` context; without a proxy,
    urllib's default handlers, environment proxies included), plus :class:`CappedAnswers`."""
    handlers: list[BaseHandler] = [HTTPSHandler(context=ssl), CappedAnswers(policy)]
    if proxy is not None:
        if not isinstance(proxy, str):
            raise SlackRequestError(f"Invalid proxy detected: {proxy} must be a str value")
        handlers.insert(0, ProxyHandler({"http": proxy, "https": proxy}))
    return urllib.request.build_opener(*handlers)


def _checked_url(url: str) -> None:
    """slack_sdk's own check: urllib would also open file:// and ftp:// URLs."""
    if not url.lower().startswith("http"):
        raise SlackRequestError(f"Invalid URL detected: {url}")


def _decoded(resp: Any) -> str:
    """The whole (capped) answer as text, in the charset it names; UTF-8 as slack_sdk's."""
    raw: bytes = resp.read()
    charset: str | None = resp.headers.get_content_charset()
    return raw.decode(charset or "utf-8")


class CappedWebhookClient(WebhookClient):
    """slack_sdk's ``WebhookClient``, reading at most the cap of any answer."""

    def __init__(self, url: str, *, policy: Policy, **options: Any) -> None:
        super().__init__(url, **options)
        self._policy = policy

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        _checked_url(url)
        opener = capped_opener(self._policy, self.proxy, self.ssl)
        http_resp = opener.open(req, timeout=self.timeout)
        body = _decoded(http_resp)
        resp = WebhookResponse(url=url, status_code=http_resp.status, body=body,
                               headers=http_resp.headers)
        if self.logger.level <= logging.DEBUG:  # as slack_sdk's _debug_log_response
            self.logger.debug("Received the following response - status: %s, headers: %s, "
                              "body: %s", resp.status_code, dict(resp.headers), resp.body)
        return resp


class CappedWebClient(WebClient):
    """slack_sdk's ``WebClient``, reading at most the cap of any answer (file uploads too)."""

    def __init__(self, *, policy: Policy, **options: Any) -> None:
        super().__init__(**options)
        self._policy = policy

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        _checked_url(url)
        opener = capped_opener(self._policy, self.proxy, self.ssl)
        resp = opener.open(req, timeout=self.timeout)
        if resp.headers.get_content_type() == "application/gzip":  # admin.analytics.getFile
            return {"status": resp.code, "headers": resp.headers, "body": resp.read()}
        body = _decoded(resp)
        if self._logger.level <= logging.DEBUG:
            self._logger.debug("Received the following response - status: %s, headers: %s, "
                               "body: %s", resp.code, dict(resp.headers), body)
        return {"status": resp.code, "headers": resp.headers, "body": body}

    def _upload_file(self, *, url: str, data: bytes, logger: logging.Logger, timeout: int,
                     proxy: str | None, ssl: SSLContext | None) -> FileUploadV2Result:
        """The bytes of ``files_upload_v2`` to the URL Slack issued (no token sent there)."""
        _checked_url(url)  # it came in an answer: never a file:// or ftp:// URL
        opener = capped_opener(self._policy, proxy, ssl)
        if logger.level <= logging.DEBUG:
            logger.debug("Sending a request: POST %s", url)
        resp = opener.open(Request(method="POST", url=url, data=data, headers={}),
                           timeout=timeout)
        body = _decoded(resp)
        if logger.level <= logging.DEBUG:
            logger.debug("Received the following response - status: %s, headers: %s, body: %s",
                         resp.status, dict(resp.headers), body)
        return FileUploadV2Result(status=resp.status, body=body)


def webhook_client(owner: str, url: str, **options: Any) -> CappedWebhookClient:
    """A ``WebhookClient`` for ``url`` whose answers are capped; ``owner`` names the destination
    in the refusal ("Slack destination 'alerts'"), ``options`` go to slack_sdk."""
    return CappedWebhookClient(url, policy=sink_policy(owner), **options)


def web_client(owner: str, **options: Any) -> CappedWebClient:
    """A ``WebClient`` whose answers are capped (see :func:`webhook_client`)."""
    return CappedWebClient(policy=sink_policy(owner), **options)
