"""A fake Stack Exchange API 2.3 for tests: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real source (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. It answers the way api.stackexchange.com/docs documents it:

- ``GET /2.3/questions``: ``tagged`` (semicolon-separated; a question must have every tag),
  ``GET /2.3/search/advanced``: ``q`` (every word or "quoted phrase" must occur in the title or
  body, case-insensitively; the real ranking is undocumented, enough here) and ``tagged`` (at
  least one), ``GET /2.3/answers``, ``GET /2.3/info``;
- ``site`` is required (``bad_parameter`` otherwise, and for a site it does not host);
  ``sort`` (``creation`` or ``activity``; default ``activity``), ``order``, ``fromdate`` and
  ``todate`` (epoch seconds; the documentation does not say whether ``todate`` is inclusive:
  it is here unless ``todate_inclusive`` is set False), ``page`` (from 1) and ``pagesize``
  (0-100, default 30);
- ``filter``: ``withbody`` (or a custom one) includes ``body``; ``default`` leaves it out;
- the common wrapper: ``items``, ``has_more``, ``quota_max``, ``quota_remaining`` (one request
  less each time), ``backoff`` when scripted;
- errors as the API sends them: HTTP 400 for all of them, with ``error_id``, ``error_name`` and
  ``error_message`` (``bad_parameter`` 400, ``invalid_access_token`` 402, ``no_method`` 404,
  ``throttle_violation`` 502 with "more requests available in N seconds" once the quota is
  spent);
- every answer gzip-compressed (``Content-Encoding: gzip``), as the real API always does;
- titles and display names HTML-escaped, as the API's safe filters return them; deleted posts
  are never returned; a deleted owner is ``{"user_type": "does_not_exist", ...}``.

Scripting: :meth:`FakeStackExchange.enqueue` queues a raw answer (status, body, headers, delay)
used once, in order, before the normal routing; :meth:`FakeStackExchange.add_after` makes items
appear only after some requests; :meth:`FakeStackExchange.delete_after` removes one; ``backoff``
and ``quota_remaining`` can be set. Every request is recorded.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from typing import Any

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

SITE = "stackoverflow"
KEY = "seAppKeyZx81kQ0pLmw2024"
TOKEN = "se-access-token-Q7r2mP9vWn"
QUESTIONS, SEARCH, ANSWERS, INFO = ("/2.3/questions", "/2.3/search/advanced", "/2.3/answers",
                                    "/2.3/info")
_WORDS = re.compile(r'"([^"]*)"|(\S+)')
_TAGS = re.compile(r"<[^>]+>")
_SORTS = ("activity", "creation", "votes", "hot", "week", "month", "relevance")


def user(user_id: int = 1001, name: str = "Jane O'Dev", reputation: int = 1234) -> dict[str, Any]:
    """A ``shallow_user`` as the API returns it (display name HTML-escaped)."""
    return {"account_id": user_id + 5000, "reputation": reputation, "user_id": user_id,
            "user_type": "registered", "profile_image": "https://www.gravatar.com/avatar/x",
            "display_name": html.escape(name),
            "link": f"https://stackoverflow.com/users/{user_id}/{name.lower().replace(' ', '-')}"}


def deleted_user(user_id: int = 404) -> dict[str, Any]:
    """The owner of a post whose account was deleted."""
    return {"user_type": "does_not_exist", "display_name": f"user{user_id}"}


def question(question_id: int, creation_date: int, title: str, body: str = "<p>Details.</p>", *,
             tags: list[str] | None = None, owner: dict[str, Any] | None = None,
             answer_count: int = 0) -> dict[str, Any]:
    """A question with the ``withbody`` filter's fields (title escaped, body HTML)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return {
        "tags": list(tags or ["acme"]), "owner": owner if owner is not None else user(),
        "is_answered": answer_count > 0, "view_count": 7, "answer_count": answer_count,
        "score": 0, "last_activity_date": creation_date, "creation_date": creation_date,
        "question_id": question_id, "content_license": "CC BY-SA 4.0",
        "link": f"https://stackoverflow.com/questions/{question_id}/{slug}",
        "title": html.escape(title), "body": body,
    }


def answer(answer_id: int, question_id: int, creation_date: int, body: str, *,
           owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """An answer with the ``withbody`` filter's fields (no ``link``, no ``title``)."""
    return {
        "owner": owner if owner is not None else user(2002, "Sam Answer", 87),
        "is_accepted": False, "score": 1, "last_activity_date": creation_date,
        "creation_date": creation_date, "answer_id": answer_id, "question_id": question_id,
        "content_license": "CC BY-SA 4.0", "body": body,
    }


def error_body(error_id: int, name: str, message: str) -> dict[str, Any]:
    """The wrapper of a failed call."""
    return {"error_id": error_id, "error_message": message, "error_name": name}


class FakeStackExchange(FakeHTTPServer):
    """The fake API; use as a context manager, add items, point ``base_url`` at it.

    ``key``/``access_token``: the only ones accepted when set (a request without a key is
    allowed, with the keyless quota of 300); ``quota_remaining`` counts down per request.
    """

    name = "fake Stack Exchange API"
    methods = ("GET",)

    def __init__(self, *, site: str = SITE, key: str | None = KEY,
                 access_token: str | None = TOKEN, quota_max: int = 10000) -> None:
        super().__init__()
        self.site, self.key, self.access_token = site, key, access_token
        self.quota_max = quota_max
        self.quota_remaining = quota_max
        self.backoff: int | None = None  # set: sent once, on the next answer
        self.todate_inclusive = True
        self._questions: list[dict[str, Any]] = []
        self._answers: list[dict[str, Any]] = []
        self._later: list[tuple[int, str, Any]] = []

    # -- scripting -------------------------------------------------------------------------------

    def add(self, *items: dict[str, Any]) -> None:
        """Publish questions and answers now (an item with ``answer_id`` is an answer)."""
        with self._lock:
            for item in items:
                (self._answers if "answer_id" in item else self._questions).append(item)

    def add_after(self, requests: int, *items: dict[str, Any]) -> None:
        """Publish these once ``requests`` requests have been answered."""
        with self._lock:
            self._later.extend((requests, "add", item) for item in items)

    def delete_after(self, requests: int, question_id: int) -> None:
        """Delete a question (and its answers) once ``requests`` requests have been answered."""
        with self._lock:
            self._later.append((requests, "delete", question_id))

    def enqueue(self, status: int = 200, body: Any = "", headers: dict[str, str] | None = None,
                delay: float = 0.0) -> None:
        """Answer the next request with exactly this (FIFO; gzip-compressed), instead of
        routing it. A dict or list body is sent as JSON."""
        with self._lock:
            self._script.append(ScriptedResponse(status, body, dict(headers or {}), delay))

    # -- called from handler threads -----------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        with self._lock:
            number = len(self._requests)
            self._record(request)
            self._publish_due(number)
            if self._script:
                scripted = self._script.popleft()
                return self._gzip(scripted.status, scripted.body, scripted.headers,
                                  scripted.delay)
            status, answer = self._route(path, request.query)
            return self._gzip(status, answer)

    def _publish_due(self, number: int) -> None:
        for entry in [e for e in self._later if e[0] <= number]:
            self._later.remove(entry)
            if entry[1] == "add":
                self.add(entry[2])
            else:
                self._questions = [q for q in self._questions if q["question_id"] != entry[2]]
                self._answers = [a for a in self._answers if a["question_id"] != entry[2]]

    def _gzip(self, status: int, body: Any, headers: dict[str, str] | None = None,
              delay: float = 0.0) -> ScriptedResponse:
        payload = body if isinstance(body, bytes) else (
            body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8"))
        return ScriptedResponse(status, gzip.compress(payload),
                                {"Content-Encoding": "gzip", **(headers or {})}, delay)

    def _route(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path not in (QUESTIONS, SEARCH, ANSWERS, INFO):
            return 400, error_body(404, "no_method", "no method found with this name")
        if params.get("site") != self.site:
            return 400, error_body(400, "bad_parameter", "site is required")
        key, token = params.get("key"), params.get("access_token")
        if key is not None and self.key is not None and key != self.key:
            return 400, error_body(400, "bad_parameter", "`key` is not valid")
        if token is not None and (key is None or token != self.access_token):
            return 400, error_body(402, "invalid_access_token", "invalid access_token")
        most = self.quota_max if key is not None else min(self.quota_max, 300)
        if self.quota_remaining <= 0:
            return 400, error_body(502, "throttle_violation", "too many requests from this "
                                   "IP, more requests available in 3600 seconds")
        self.quota_remaining -= 1
        wrapper: dict[str, Any] = {"has_more": False, "quota_max": most,
                                   "quota_remaining": self.quota_remaining}
        if self.backoff is not None:
            wrapper["backoff"], self.backoff = self.backoff, None
        if path == INFO:
            site = {"total_questions": len(self._questions),
                    "total_answers": len(self._answers), "api_revision": "fake"}
            return 200, {"items": [site], **wrapper}
        try:
            items = self._select(path, params)
            page, size = int(params.get("page", 1)), int(params.get("pagesize", 30))
        except ValueError as exc:
            return 400, error_body(400, "bad_parameter", str(exc))
        if page < 1 or not 0 <= size <= 100:
            return 400, error_body(400, "bad_parameter", "page or pagesize out of range")
        start = (page - 1) * size
        shown = items[start:start + size]
        if params.get("filter", "default") == "default":
            shown = [{k: v for k, v in item.items() if k != "body"} for item in shown]
        wrapper["has_more"] = start + size < len(items)
        return 200, {"items": shown, **wrapper}

    def _select(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        sort = params.get("sort", "activity")
        if sort not in _SORTS:
            raise ValueError(f"sort {sort!r} is not valid")
        pool = self._answers if path == ANSWERS else self._questions
        tagged = [t for t in params.get("tagged", "").split(";") if t]
        if path == SEARCH and not (params.get("q") or tagged or params.get("title")):
            raise ValueError("one of q, tagged or title must be set")
        lower = int(params["fromdate"]) if "fromdate" in params else None
        upper = int(params["todate"]) if "todate" in params else None
        chosen = []
        for item in pool:
            stamp = item["creation_date"]
            if lower is not None and stamp < lower:
                continue
            if upper is not None and (stamp > upper or (stamp == upper
                                                        and not self.todate_inclusive)):
                continue
            own = set(item.get("tags") or [])
            if path == QUESTIONS and not all(t in own for t in tagged):
                continue
            if path == SEARCH and tagged and not own & set(tagged):
                continue
            if path == SEARCH and not _matches(item, params.get("q", "")):
                continue
            chosen.append(item)
        field = "creation_date" if sort == "creation" else "last_activity_date"
        chosen.sort(key=lambda i: (i[field], i.get("answer_id") or i["question_id"]),
                    reverse=params.get("order", "desc") == "desc")
        return chosen


def _matches(item: dict[str, Any], query: str) -> bool:
    haystack = html.unescape(f"{item.get('title') or ''} {_TAGS.sub(' ', item.get('body') or '')}")
    haystack = " ".join(haystack.lower().split())
    needles = [m.group(1) or m.group(2) for m in _WORDS.finditer(query)]
    return all(" ".join(n.lower().split()) in haystack for n in needles if n)
