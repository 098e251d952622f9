"""httplib2's ``Http.request`` over the guarded httpx client, for google-api-python-client.

googleapiclient sends every request through an object with httplib2's ``request`` signature.
httplib2 itself has none of our defences (it follows redirects anywhere, reads any size, keeps
its own retries), so :class:`GuardedHttp` is passed as ``http=`` instead: each request goes
through :func:`listener.core.httpguard.guarded_client` (SSRF guard on every address, the
``max_bytes`` cap, no redirect followed: a 3xx comes back as the answer and fails the poll),
and the last answer's status, headers and body are kept so that the source can read a 403's
reason and a 429's ``Retry-After`` itself (googleapiclient's ``HttpError`` keeps the request
URL, API key included, in its text: it is never shown).

The API key travels as the documented ``key`` query parameter. Two loggers would print it:
googleapiclient's ("URL being requested: GET …?key=…", DEBUG) and httpx's ("HTTP Request: GET
…", INFO); httpcore's DEBUG lines show response headers, which could echo it.
:func:`redact_library_logs` attaches the redacting filter to those loggers themselves, so the
key is masked in every record before any handler (ours, a test's, a library's) sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from listener.core.errors import SourceError
from listener.core.httpguard import Origin
from listener.core.log import RedactingFilter
from listener.sources.http import USER_AGENT, unanswered

_DROPPED = frozenset({"content-length", "accept-encoding", "host", "connection"})
_LOGGERS = ("googleapiclient.discovery", "googleapiclient.http", "googleapiclient.model", "httpx",
            "httpcore.http11", "httpcore.http2")
_FILTER = RedactingFilter()


def redact_library_logs() -> None:
    """Mask registered secrets and ``?key=`` values in the client libraries' own records
    (idempotent: one shared filter, added once per logger)."""
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)


@dataclass(frozen=True)
class Answer:
    """The last HTTP answer: what the source reads a failure from."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class GuardedHttp:
    """An ``httplib2.Http`` stand-in whose requests go through a guarded ``httpx.Client``."""

    def __init__(self, client: Any, owner: str, timeout: float, secret: str) -> None:
        self._client, self._owner, self._timeout, self._secret = client, owner, timeout, secret
        self.last: Answer | None = None

    def request(self, uri: str, method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None, redirections: int = 0,
                connection_type: Any = None) -> tuple[Any, bytes]:
        """httplib2's signature; returns ``(httplib2.Response, body bytes)``. Transport
        failures raise :class:`SourceError` (the guard's refusals as they are)."""
        import httplib2  # type: ignore[import-untyped]
        import httpx

        self.last = None
        sent = {k: v for k, v in (headers or {}).items() if k.lower() not in _DROPPED}
        library = sent.pop("user-agent", "")
        sent["User-Agent"] = f"{USER_AGENT} {library}".strip()
        content = body.encode("utf-8") if isinstance(body, str) else body
        origin = Origin.of(uri)
        try:
            response = self._client.request(method, uri, content=content or None, headers=sent)
        except SourceError:
            raise  # the guard refused an address or an answer over max_bytes: its own message
        except httpx.HTTPError as exc:
            raise unanswered(self._owner, str(origin), str(origin), exc, self._timeout,
                             lambda text: self._scrub(text)[:200]) from None
        answer = Answer(response.status_code,
                        {k.lower(): v for k, v in response.headers.items()}, response.content)
        self.last = answer
        result = httplib2.Response({**answer.headers, "status": str(answer.status)})
        result.reason = response.reason_phrase
        return result, answer.body

    def close(self) -> None:
        self._client.close()

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
