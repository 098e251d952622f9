"""The network guard (:mod:`listener.core.httpguard`) for clients built on ``requests``.

tweepy (X), prawcore (Reddit) and Mastodon.py send through a ``requests.Session`` that each
source controls. :class:`GuardedAdapter`, mounted on that session for ``http://`` and
``https://``, sees every request, including each hop of a redirect (``Session.resolve_redirects``
sends every hop through the adapter again): it checks the hop against the policy before
connecting and reads the answer itself, at most ``max_bytes`` of it (decoded), before requests
or the library can read it whole. Imported only by those sources: ``requests`` is optional.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from listener.core.httpguard import Origin, Policy

_PIECE = 64 * 1024


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that checks every hop and caps every answer (see the module)."""

    def __init__(self, policy: Policy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
        verify: Any = True, cert: Any = None, proxies: Any = None,
    ) -> requests.Response:
        """Check, send, then read at most ``max_bytes`` of the answer into ``content``."""
        self.check(request)
        response = super().send(request, stream=True, timeout=timeout, verify=verify,
                                cert=cert, proxies=proxies)
        try:
            body = self._read(response)
        except BaseException:
            response.close()
            raise
        # what requests' own Response.content would have stored after reading the body
        response._content, response._content_consumed = body, True
        return response

    def check(self, request: requests.PreparedRequest) -> None:
        """Refuse a request to a forbidden address (a name that does not resolve is a
        ``requests.ConnectionError``, as it would have been without the guard)."""
        origin = Origin.of(request.url or "")
        try:
            self.policy.target(origin)
        except OSError as exc:
            raise requests.ConnectionError(f"cannot resolve {origin.host}: {exc}",
                                           request=request) from None

    def _read(self, response: requests.Response) -> bytes:
        origin = Origin.of(response.url or "")
        self.policy.check_length(origin, response.headers)
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.raw.stream(_PIECE, decode_content=True):
                total += len(chunk)
                if total > self.policy.max_bytes:
                    raise self.policy.too_large(origin)
                chunks.append(chunk)
        except ProtocolError as exc:  # the mapping requests' Response.iter_content makes
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        except ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from exc
        except Urllib3SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc
        return b"".join(chunks)


def mount(session: requests.Session, adapter: HTTPAdapter) -> None:
    """Route every URL of ``session`` through ``adapter`` (a redirect cannot leave it)."""
    session.mount("https://", adapter)
    session.mount("http://", adapter)
