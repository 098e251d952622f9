"""A fake of Google Play's review RPC (batchexecute ``oCPfdb``): real HTTP on 127.0.0.1.

The real google-play-scraper talks to it through ``GooglePlaySource``'s transport (``base_url``),
so the library builds and parses every request and answer itself::

    with FakeGooglePlay() as play:
        play.add_reviews("com.acme.app", [play_review("gp:1", at=...), ...])   # newest first
        play.enqueue(429, headers={"Retry-After": "30"})
        ...
        assert play.requests[0].app_id == "com.acme.app"

The wire format is the one google-play-scraper 1.2.x sends and parses:
- request: ``POST /_/PlayStoreUi/data/batchexecute?hl=<lang>&gl=<country>`` with the form field
  ``f.req = [[["oCPfdb", "<args>", null, "generic"]]]`` where ``<args>`` is the JSON text
  ``[null, [2, <sort>, [<count>] or [<count>, null, "<token>"], null, [null, <score filter>, ...]],
  ["<app id>", 7]]``;
- answer: the XSSI guard ``)]}'`` and a blank line, then ``[["wrb.fr", "oCPfdb", "<payload>",
  null, null, null, "generic"], ["di", 41], ["af.httprm", 40, "…", 12]]`` where ``<payload>`` is
  the JSON text ``[[<review>, ...], [null, "<next token>" or null], null]``;
- a review: ``[id, [user name, [null, 2, null, [null, null, avatar url]]], score, null, text,
  [epoch seconds, nanos], thumbs-up count, [null, reply text, [seconds, nanos]] or null, null, null,
  app version]``.
An app never added answers batchexecute's error frame ``["wrb.fr", "oCPfdb", null, null, null,
[5], "generic"]`` (5: NOT_FOUND). Scripted answers (:meth:`enqueue`) replace the next answers
(or, with ``after``, a later one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

RPC_PATH = "/_/PlayStoreUi/data/batchexecute"
XSSI = ")]}'\n\n"
GATEWAY_ERROR_BODY = XSSI + json.dumps([
    ["wrb.fr", "oCPfdb", None, None, None,
     [8, None, [["type.googleapis.com/com.google.play.gateway.proto.PlayGatewayError", [1]]]],
     "generic"],
    ["di", 12],
])


def play_review(
    review_id: str, at: datetime, *, score: int = 4, text: str | None = "Works well",
    user: str = "Play User", version: str | None = "2.1.0", reply: str | None = None,
) -> list[Any]:
    """One review array as the RPC returns it."""
    seconds = int(at.timestamp())
    replied = [None, reply, [seconds + 3600, 0]] if reply else None
    avatar = [None, 2, None, [None, None, "https://play-lh.googleusercontent.com/a/fake"]]
    return [review_id, [user, avatar], score, None, text, [seconds, 123000000], 3, replied,
            None, None, version, None]


@dataclass(frozen=True)
class Scripted(ScriptedResponse):
    after: int = 0  # answer this many RPC requests normally first


@dataclass(frozen=True)
class PlayRequest(RecordedRequest):
    """What arrived; ``app_id``/``count``/``token``/``sort`` are decoded from ``f.req``."""

    @cached_property
    def _decoded(self) -> tuple[str | None, int | None, int | None, str | None]:
        return _decode(self.body)

    @property
    def app_id(self) -> str | None:
        return self._decoded[0]

    @property
    def sort(self) -> int | None:
        return self._decoded[1]

    @property
    def count(self) -> int | None:
        return self._decoded[2]

    @property
    def token(self) -> str | None:
        return self._decoded[3]


def _decode(body: bytes) -> tuple[str | None, int | None, int | None, str | None]:
    try:
        freq = json.loads(parse_qs(body.decode())["f.req"][0])
        rpc = freq[0][0]
        args = json.loads(rpc[1])
        paging = args[1][2]
        return args[2][0], args[1][1], paging[0], paging[2] if len(paging) > 2 else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None, None, None, None


class FakeGooglePlay(FakeHTTPServer):
    """Scriptable fake review RPC; a context manager, or start()/stop()."""

    name = "fake Google Play"
    methods = ("POST",)

    def __init__(self) -> None:
        super().__init__()
        self._reviews: dict[str, list[list[Any]]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}

    # -- scripting and inspection ----------------------------------------------------------

    def add_reviews(self, app_id: str, reviews: list[list[Any]]) -> None:
        """Put ``reviews`` (newest first) on top of the app's reviews; [] makes a known app."""
        with self._lock:
            self._reviews[app_id] = list(reviews) + self._reviews.get(app_id, [])

    def enqueue(
        self, status: int = 200, body: str = "", headers: dict[str, str] | None = None,
        delay: float = 0.0, after: int = 0,
    ) -> None:
        """Answer an RPC request with this instead of reviews: the next one, or the one that
        follows ``after`` normally answered requests (to fail a later page of one poll)."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay, after))

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = PlayRequest(method, path, raw_query, headers, body)
        app_id, count, token = request.app_id, request.count, request.token
        with self._lock:
            self._record(request)
            if path != RPC_PATH:
                return Scripted(404, "<html>Not Found</html>")
            if self._script and self._script[0].after == 0:
                return self._script.popleft()
            if self._script:
                first = self._script.popleft()
                self._script.appendleft(replace(first, after=first.after - 1))
            if app_id is None or count is None:
                return Scripted(400, "<html>Bad Request</html>")
            if app_id not in self._reviews:
                frame = ["wrb.fr", "oCPfdb", None, None, None, [5], "generic"]
                return Scripted(200, XSSI + json.dumps([frame, ["di", 9]]))
            start = 0
            if token is not None:
                known = self._tokens.get(token)
                if known is None or known[0] != app_id:
                    return Scripted(400, "<html>Bad Request</html>")
                start = known[1]
            reviews = self._reviews[app_id]
            page = reviews[start : start + count]
            next_token = None
            if start + count < len(reviews):
                next_token = f"CsYBCsMBQUxFUHJ{len(self._tokens):06d}"
                self._tokens[next_token] = (app_id, start + count)
        payload = json.dumps([page, [None, next_token], None])
        frames = [["wrb.fr", "oCPfdb", payload, None, None, None, "generic"], ["di", 41],
                  ["af.httprm", 40, "-5184736290713874960", 12]]
        return Scripted(200, XSSI + json.dumps(frames))
