"""A fake of Trustpilot's public API (API key): real HTTP on 127.0.0.1, an ephemeral port.

Tests point ``TrustpilotSource`` (``base_url``) at it, so httpx, sockets and timeouts run for real::

    with FakeTrustpilot() as tp:
        tp.add_unit()                                         # UNIT_ID, known as DOMAIN
        tp.add_reviews(review("r1", at), review("r2", at2))   # any order: served newest first
        tp.enqueue(429, {"message": "..."}, headers={"Retry-After": "30"})
        ...
        assert tp.requests[0].query["orderBy"] == "createdat.desc"

What it serves, as developers.trustpilot.com documents the public endpoints:

- every request needs the ``apikey`` header (:attr:`FakeTrustpilot.api_key`), else 401 with the
  API gateway's ``{"fault": {"faultstring": "Invalid ApiKey", ...}}``;
- ``GET /v1/business-units/find?name=<name>``: the business unit whose identifying or referring
  name it is (case-insensitive), else 404;
- ``GET /v1/business-units/{id}``: the unit's public information, else 404;
- ``GET /v1/business-units/{id}/reviews``: ``{"reviews": [...], "links": [...]}`` with ``page``
  (from 1; past the end an empty list), ``perPage`` (1-100, default 20), ``orderBy``
  (``createdat.desc`` default, ``createdat.asc``, ``stars.asc``, ``stars.desc``), ``stars`` and
  ``language`` filters (repeated parameters or comma-separated; ``language=all`` is every one);
  the answer's ``links`` hold ``next-page`` / ``prev-page`` hrefs. A bad parameter answers 400.
  Only reviews with ``status`` ``active`` are listed (reported ones are hidden, as by default);
- ``GET /v1/reviews/{id}``: one review, 404 once it was deleted;
- anything else: 404 ``{"message": "Not found"}``.

A review is a dict made by :func:`review` (its ``businessUnit`` is filled in when served).
Scripting: :meth:`FakeTrustpilot.enqueue` answers the next request (any path) with exactly this,
in order; :meth:`FakeTrustpilot.after` runs an action (add or delete reviews) once that many
requests were answered, to change the list between two pages; :attr:`FakeTrustpilot.quota`
(requests left, None: unlimited) answers 429 once spent, with :attr:`quota_retry_after` as
Retry-After when set (Trustpilot documents no reset header). Every request is recorded.
"""

from __future__ import annotations

import copy
import json
import re
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.fakes.base import ChangingFake, RecordedRequest, ScriptedResponse

API_KEY = "tp-apikey-4f1c0a9e7d3b2a4158c6"
UNIT_ID = "507f191e810c19729de860ea"
DOMAIN = "acme.example"
ORDERS = ("createdat.desc", "createdat.asc", "stars.asc", "stars.desc")
_UNIT_PATH = re.compile(r"^/v1/business-units/([^/]+)$")
_REVIEWS_PATH = re.compile(r"^/v1/business-units/([^/]+)/reviews$")
_REVIEW_PATH = re.compile(r"^/v1/reviews/([^/]+)$")


def stamp(at: datetime) -> str:
    """A time as the API writes it (UTC, seconds, ``Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def review(
    review_id: str, created_at: datetime, *, stars: int = 1, title: str = "Not happy",
    text: str = "It broke after a week.", language: str | None = "en",
    author: str | None = "Jane D.", consumer_reviews: int = 3, reply: str | None = None,
    status: str = "active", verified: bool = False,
) -> dict[str, Any]:
    """A review as the API returns it (without its business unit, which the fake adds)."""
    consumer_id = f"c{zlib.crc32(str(author).encode()):012d}"
    return {
        "links": [], "id": review_id,
        "consumer": {"links": [], "id": consumer_id, "displayName": author,
                     "displayLocation": "London, GB", "numberOfReviews": consumer_reviews},
        "businessUnit": None, "location": None, "stars": stars, "title": title, "text": text,
        "language": language, "createdAt": stamp(created_at), "updatedAt": None,
        "experiencedAt": stamp(created_at),
        "companyReply": None if reply is None else {
            "text": reply, "authorBusinessUserId": "5f0c8e1a2b3c4d5e6f708192",
            "authorBusinessUserName": "Acme Support", "createdAt": stamp(created_at),
            "updatedAt": None},
        "isVerified": verified, "numberOfLikes": 0, "status": status, "reportData": None,
        "complianceLabels": [], "countsTowardsTrustScore": True,
        "countsTowardsLocationTrustScore": None, "invitation": None, "businessUnitHistory": [],
        "reviewVerificationLevel": "verified" if verified else "not-verified",
    }


class FakeTrustpilot(ChangingFake):
    """The fake API; use as a context manager, add units and reviews, point base_url at it."""

    name = "fake Trustpilot API"
    methods = ("GET",)

    def __init__(self) -> None:
        super().__init__()
        self.api_key = API_KEY
        self.quota: int | None = None
        self.quota_retry_after: str | None = None
        self._units: dict[str, dict[str, Any]] = {}
        self._reviews: dict[str, list[dict[str, Any]]] = {}

    # -- scripting ----------------------------------------------------------------------------

    def add_unit(self, unit_id: str = UNIT_ID, domain: str = DOMAIN,
                 display_name: str = "Acme") -> None:
        with self._lock:
            self._units[unit_id] = {
                "links": [], "id": unit_id, "displayName": display_name,
                "name": {"identifying": domain, "referring": [domain, f"www.{domain}"]},
                "websiteUrl": f"https://{domain}", "country": "GB", "status": "active",
                "badFit": False, "score": {"trustScore": 3.1, "stars": 3.0},
                "numberOfReviews": {"total": 0, "usedForTrustScoreCalculation": 0,
                                    "oneStar": 0, "twoStars": 0, "threeStars": 0,
                                    "fourStars": 0, "fiveStars": 0},
            }
            self._reviews.setdefault(unit_id, [])

    def add_reviews(self, *reviews: dict[str, Any], unit_id: str = UNIT_ID) -> None:
        with self._lock:
            if unit_id not in self._units:
                self.add_unit(unit_id)
            self._reviews[unit_id].extend(reviews)

    def delete_review(self, review_id: str) -> None:
        """The review is gone: no longer listed, and 404 by id."""
        with self._lock:
            for reviews in self._reviews.values():
                reviews[:] = [r for r in reviews if r["id"] != review_id]

    def enqueue(self, status: int = 200, body: Any = "", headers: dict[str, str] | None = None,
                delay: float = 0.0) -> None:
        """Answer the next request (any path) with exactly this (FIFO)."""
        with self._lock:
            self._script.append(ScriptedResponse(status, body, dict(headers or {}), delay))

    # -- called from handler threads ----------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        with self._lock:
            self._arrive(request)
            if self._script:
                scripted: ScriptedResponse = self._script.popleft()
                return scripted
            if headers.get("apikey") != self.api_key:
                return _json(401, {"fault": {"faultstring": "Invalid ApiKey", "detail": {
                    "errorcode": "oauth.v2.InvalidApiKey"}}})
            if self.quota is not None:
                if self.quota <= 0:
                    extra = {"Retry-After": self.quota_retry_after} \
                        if self.quota_retry_after else {}
                    return _json(429, {"message": "API rate limit exceeded"}, extra)
                self.quota -= 1
            return self._route(path, request)

    def _route(self, path: str, request: RecordedRequest) -> ScriptedResponse:
        if path == "/v1/business-units/find":
            name = request.query.get("name", "").lower()
            for unit in self._units.values():
                if name in {unit["name"]["identifying"], *unit["name"]["referring"]}:
                    return _json(200, unit)
            return _not_found()
        if match := _UNIT_PATH.match(path):
            found = self._units.get(match.group(1))
            return _json(200, found) if found else _not_found()
        if match := _REVIEWS_PATH.match(path):
            unit_id = match.group(1)
            if unit_id not in self._units:
                return _not_found()
            try:
                return _json(200, self._list(unit_id, request))
            except ValueError as exc:
                return _json(400, {"message": str(exc)})
        if match := _REVIEW_PATH.match(path):
            for unit_id, reviews in self._reviews.items():
                for item in reviews:
                    if item["id"] == match.group(1):
                        return _json(200, self._served(item, unit_id))
            return _not_found()
        return _not_found()

    def _list(self, unit_id: str, request: RecordedRequest) -> dict[str, Any]:
        params = request.query_lists
        page = _int(params, "page", 1, 1, 2**31 - 1)
        per_page = _int(params, "perPage", 20, 1, 100)
        order = (params.get("orderBy") or ["createdat.desc"])[-1]
        if order not in ORDERS:
            raise ValueError(f"orderBy must be one of {', '.join(ORDERS)}")
        stars = {int(s) for s in _values(params, "stars")}
        if any(not 1 <= s <= 5 for s in stars):
            raise ValueError("stars must be between 1 and 5")
        languages = set(_values(params, "language")) - {"all"}
        shown = [r for r in self._reviews[unit_id] if r["status"] == "active"
                 and (not stars or r["stars"] in stars)
                 and (not languages or r["language"] in languages)]
        field, direction = order.split(".")
        key = (lambda r: (r["createdAt"], r["id"])) if field == "createdat" else \
            (lambda r: (r["stars"], r["createdAt"], r["id"]))
        shown.sort(key=key, reverse=direction == "desc")
        start = (page - 1) * per_page
        links = []
        base = f"{self.base_url}/v1/business-units/{unit_id}/reviews"
        rest = {k: v for k, v in request.query.items() if k not in ("page", "perPage")}
        if start + per_page < len(shown):
            links.append(_link(base, rest, page + 1, per_page, "next-page"))
        if page > 1:
            links.append(_link(base, rest, page - 1, per_page, "prev-page"))
        return {"links": links,
                "reviews": [self._served(r, unit_id) for r in shown[start:start + per_page]]}

    def _served(self, item: dict[str, Any], unit_id: str) -> dict[str, Any]:
        unit = self._units[unit_id]
        served = copy.deepcopy(item)
        served["businessUnit"] = {"links": [], "id": unit_id,
                                  "identifyingName": unit["name"]["identifying"],
                                  "displayName": unit["displayName"]}
        served["links"] = [{"href": f"{self.base_url}/v1/reviews/{item['id']}",
                            "method": "GET", "rel": "reviews"}]
        return served


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> ScriptedResponse:
    return ScriptedResponse(status, json.dumps(body), dict(headers or {}))


def _not_found() -> ScriptedResponse:
    return _json(404, {"message": "Not found"})


def _int(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = int(raw[-1])
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def _values(params: dict[str, list[str]], name: str) -> list[str]:
    return [v for raw in params.get(name, []) for v in raw.split(",") if v]


def _link(base: str, rest: dict[str, str], page: int, per_page: int, rel: str) -> dict[str, str]:
    query = urlencode({**rest, "page": page, "perPage": per_page})
    return {"href": f"{base}?{query}", "method": "GET", "rel": rel}
