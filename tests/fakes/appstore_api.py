"""A fake of Apple's customer-reviews feed: real HTTP on 127.0.0.1, an ephemeral port.

Tests point ``AppStoreSource`` (``base_url``) at it, so httpx, sockets and timeouts run for real::

    with FakeAppStore() as apple:
        apple.add_reviews("us", "284882215", [review("1", at=...), ...])   # newest first
        apple.enqueue(429, headers={"Retry-After": "30"})
        ...
        assert apple.requests[0].path == "/us/rss/customerreviews/page=1/id=284882215/..."

Behaviour, like Apple's feed (``/{country}/rss/customerreviews/page={n}/id={id}/sortby=mostrecent
/json``): 50 reviews a page, pages 1..10, newest first; ``entry`` is a list, a single object when
the page holds one review, and absent when there are none; ``link`` holds ``self``, ``first``,
``last`` (the last page with reviews), ``previous`` and ``next`` (page-numbered hrefs).
``app_entry=True`` puts the old feeds' app-metadata entry (``im:name``, no rating) first on page 1.
Any other path answers 404. Scripted answers (:meth:`enqueue`: status, raw body, headers, delay)
replace the next feed answers in order. Every request is recorded.

Replies (issue 18): the same fake also serves the App Store Connect API's customer reviews and
their responses, in Apple's documented JSON:API shapes, over the reviews added above. As on the
live service, a review has another id in App Store Connect than in the feed: Apple's
``customerReviews`` ids look like ``00000028-b08c-0014-729e-fbd500000000`` (reference, "List all
customer reviews for an app"), the feed's are numbers. :meth:`FakeAppStore.asc_id` tells a feed
review's App Store Connect id; :meth:`FakeAppStore.add_connect_review` adds a review that only
the API shows (another storefront's, one newer than the feed read)::

    issuer, key_id, pem = apple.api_key()     # a team API key this fake accepts
    ...
    assert apple.response_of(apple.asc_id("11053452211")) is not None
    assert len(apple.responses_posted()) == 1

- every ``/v1/`` request needs ``Authorization: Bearer <JWT>``: ES256 (raw r‖s signature) by a
  key from :meth:`FakeAppStore.api_key`, header ``kid``, claims ``iss`` (the issuer id), ``aud``
  ``appstoreconnect-v1`` and ``exp`` in the future and at most 20 minutes away; else 401
  ``NOT_AUTHORIZED``;
- ``POST /v1/customerReviewResponses`` (``data.type`` ``customerReviewResponses``,
  ``attributes.responseBody``, ``relationships.review.data {type: customerReviews, id}``): 201
  with the response (``id``, ``attributes {responseBody, lastModifiedDate, state:
  PENDING_PUBLISH}``); a review that has a response gets it replaced (Apple's reference: "If a
  response already exists, this endpoint updates the response by overwriting it"), or, with
  :attr:`conflict_on_existing`, 409 (older answers); 409 ``ENTITY_ERROR.ATTRIBUTE.INVALID`` past
  5,970 characters; 403 ``FORBIDDEN_ERROR`` when :attr:`roles` has none of Admin, App Manager,
  Customer Support; 404 for a review deleted with :meth:`FakeAppStore.delete_review`;
- ``GET /v1/customerReviews/{id}/response``: ``{"data": <the response>}``, ``{"data": null}``
  when there is none, 404 for an unknown review (a feed id is one);
- ``GET /v1/customerReviews/{id}``: the review (``customerReviews``: ``attributes {rating, title,
  body, reviewerNickname, createdDate, territory}``), 404 for an unknown one;
- ``GET /v1/apps/{id}/customerReviews``: ``{"data": [...], "links": {"self", "next"},
  "meta": {"paging": {"total", "limit"}}}`` over every storefront's reviews of the app;
  ``sort`` (``createdDate``, ``-createdDate``, ``rating``, ``-rating``; oldest first when absent,
  Apple documents no default), ``limit`` (1..200, default 50), ``filter[territory]`` and
  ``filter[rating]`` (comma-separated), ``exists[publishedResponse]``; ``links.next`` (absolute,
  on Apple's host, the query kept with an opaque ``cursor``) while reviews are left; an unknown
  parameter or value 400 ``PARAMETER_ERROR.INVALID``; an app never added 404.
Errors are Apple's ``{"errors": [{"id", "status", "code", "title", "detail"}]}``. Every API
answer carries ``X-Rate-Limit: user-hour-lim:<hourly_limit>;user-hour-rem:<left>;``; past
:attr:`hourly_limit` requests (:attr:`hour_used` counts them) the answer is 429
``RATE_LIMIT_EXCEEDED`` (no ``Retry-After`` unless :attr:`retry_after` is set).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from tests.fakes.base import FakeHTTPServer, RecordedRequest, parse_json
from tests.fakes.base import ScriptedResponse as Scripted

PAGE_SIZE = 50
MAX_PAGES = 10
REAL_HOST = "https://itunes.apple.com"
API_HOST = "https://api.appstoreconnect.apple.com"
RESPONSES = "/v1/customerReviewResponses"
RESPONSE_MAX = 5970
WRITE_ROLES = frozenset({"ADMIN", "APP_MANAGER", "CUSTOMER_SUPPORT"})
LIST_MAX = 200
_RESPONSE_OF = re.compile(r"^/v1/customerReviews/(?P<id>[^/]+)/response$")
_REVIEW = re.compile(r"^/v1/customerReviews/(?P<id>[^/]+)$")
_APP_REVIEWS = re.compile(r"^/v1/apps/(?P<app>[^/]+)/customerReviews$")
_LIST_PARAMS = frozenset({"sort", "limit", "cursor", "filter[territory]", "filter[rating]",
                          "exists[publishedResponse]", "fields[customerReviews]", "include"})
_SORTS = frozenset({"createdDate", "-createdDate", "rating", "-rating"})
# the feed's two-letter storefronts as App Store Connect's territories (ISO 3166-1 alpha-3)
TERRITORIES = {"us": "USA", "gb": "GBR", "de": "DEU", "fr": "FRA", "jp": "JPN", "ca": "CAN",
               "au": "AUS", "it": "ITA", "es": "ESP", "nl": "NLD", "br": "BRA", "mx": "MEX",
               "in": "IND", "ch": "CHE", "at": "AUT", "se": "SWE", "ie": "IRL", "nz": "NZL"}


def review(
    review_id: str, at: datetime, *, rating: int = 4, title: str = "Title",
    content: str = "Body", author: str = "reviewer", version: str = "1.0",
) -> dict[str, Any]:
    """One feed entry as Apple's JSON feed shapes it (every value under ``label``)."""
    return {
        "author": {
            "uri": {"label": f"https://itunes.apple.com/us/reviews/id{abs(hash(author)) % 10**9}"},
            "name": {"label": author},
            "label": "",
        },
        "updated": {"label": at.isoformat()},
        "im:rating": {"label": str(rating)},
        "im:version": {"label": version},
        "id": {"label": review_id},
        "title": {"label": title},
        "content": {"label": content, "attributes": {"type": "text"}},
        "link": {"attributes": {"rel": "related",
                                "href": "https://itunes.apple.com/us/review?id=1"}},
        "im:voteSum": {"label": "0"},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "im:voteCount": {"label": "0"},
    }


def app_entry(app_id: str) -> dict[str, Any]:
    """The app-metadata entry old feeds put first on page 1: not a review."""
    return {
        "im:name": {"label": "Acme"},
        "rights": {"label": "© Acme Inc."},
        "id": {"label": f"https://apps.apple.com/us/app/acme/id{app_id}",
               "attributes": {"im:id": app_id}},
        "im:artist": {"label": "Acme Inc."},
    }


class FakeAppStore(FakeHTTPServer):
    """Scriptable fake feed; a context manager, or start()/stop()."""

    name = "fake App Store"
    methods = ("GET", "POST")

    roles: frozenset[str] = frozenset({"CUSTOMER_SUPPORT"})
    """The API key's roles; responding needs one of :data:`WRITE_ROLES`."""
    conflict_on_existing = False
    """Answer 409 to a response for a review that has one (instead of replacing it)."""
    hourly_limit = 3600
    """Requests an API key may make in the rolling hour (``user-hour-lim``)."""
    retry_after: str | None = None
    """``Retry-After`` on a 429 (Apple documents none)."""

    def __init__(self, *, app_entry: bool = False) -> None:
        self.app_entry = app_entry
        super().__init__()
        self._reviews: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # App Store Connect: its review id → {"app": app id, "feed": feed id or None,
        # "attributes": the customerReviews attributes}; and a feed id → its review id there
        self._api_reviews: dict[str, dict[str, Any]] = {}
        self._connect_ids: dict[str, str] = {}
        self._apps: set[str] = set()
        self._serial = 0x28
        self._responses: dict[str, dict[str, Any]] = {}  # App Store Connect id → its response
        self._keys: dict[str, tuple[str, Any]] = {}  # key id → (issuer id, public key)
        self.hour_used = 0

    # -- scripting and inspection ----------------------------------------------------------

    def add_reviews(self, country: str, app_id: str, entries: list[dict[str, Any]]) -> None:
        """Put ``entries`` (newest first) on top of the app's existing reviews; App Store
        Connect knows each (well-formed) one under an id of its own (:meth:`asc_id`)."""
        with self._lock:
            key = (country, app_id)
            self._reviews[key] = list(entries) + self._reviews.get(key, [])
            self._apps.add(app_id)
            for entry in entries:
                attributes = _connect_attributes(entry, country)
                feed_id = entry.get("id", {}).get("label") if isinstance(entry, dict) else None
                if attributes is None or not isinstance(feed_id, str):
                    continue  # the app-metadata entry, or a collector test's malformed one
                connect_id = self._connect_ids.get(feed_id) or self._new_id(app_id, feed_id)
                self._connect_ids[feed_id] = connect_id
                self._api_reviews[connect_id] = {"app": app_id, "feed": feed_id,
                                                 "attributes": attributes}

    def add_connect_review(
        self, app_id: str, at: datetime, *, nickname: str = "reviewer", title: str = "Title",
        body: str = "Body", rating: int = 4, territory: str = "USA",
    ) -> str:
        """A review only App Store Connect shows (not in any feed this fake serves); its id."""
        with self._lock:
            self._apps.add(app_id)
            connect_id = self._new_id(app_id, f"connect-only-{self._serial}")
            self._api_reviews[connect_id] = {"app": app_id, "feed": None, "attributes": {
                "rating": rating, "title": title, "body": body, "reviewerNickname": nickname,
                "createdDate": at.isoformat(timespec="seconds"), "territory": territory}}
            return connect_id

    def asc_id(self, feed_id: str) -> str:
        """The App Store Connect id of the review the feed calls ``feed_id`` (KeyError: none)."""
        with self._lock:
            return self._connect_ids[feed_id]

    def delete_review(self, review_id: str) -> None:
        """The author deleted the review (its feed id or its App Store Connect id): gone from
        the feed and the API (with its response)."""
        with self._lock:
            connect_id = self._connect_ids.get(review_id, review_id)
            known = self._api_reviews.pop(connect_id, None)
            feed_id = known["feed"] if known is not None else review_id
            for key, entries in self._reviews.items():
                self._reviews[key] = [e for e in entries
                                      if e.get("id", {}).get("label") != feed_id]
            self._responses.pop(connect_id, None)

    def response_of(self, review_id: str) -> dict[str, Any] | None:
        """The customerReviewResponses resource (a copy) of the review App Store Connect calls
        ``review_id``, or None. A feed id is refused: responses live on App Store Connect ids."""
        with self._lock:
            if review_id in self._connect_ids:
                raise AssertionError(f"{review_id} is a feed id; App Store Connect calls the "
                                     f"review {self._connect_ids[review_id]} (asc_id)")
            found = self._responses.get(review_id)
            return json.loads(json.dumps(found)) if found is not None else None

    def connect_reviews_listed(self) -> list[RecordedRequest]:
        """Every ``GET /v1/apps/{id}/customerReviews`` received, oldest first."""
        return [r for r in self.requests
                if r.method == "GET" and _APP_REVIEWS.match(r.path) is not None]

    def _new_id(self, app_id: str, feed_id: str) -> str:
        """An id in the form Apple's reference shows (``00000028-b08c-0014-729e-fbd5…``)."""
        digest = sha256(f"{app_id}:{feed_id}".encode()).hexdigest()
        self._serial += 1
        return f"{self._serial:08x}-b08c-0014-{digest[:4]}-{digest[4:8]}00000000"

    def responses_posted(self) -> list[RecordedRequest]:
        """Every ``POST /v1/customerReviewResponses`` received, oldest first."""
        return [r for r in self.requests if r.method == "POST" and r.path == RESPONSES]

    def api_key(self) -> tuple[str, str, str]:
        """A team API key this fake accepts: (issuer id, key id, the .p8 PEM)."""
        from cryptography.hazmat.primitives import serialization

        key = _ec_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        issuer, key_id = str(uuid.uuid4()), secrets.token_hex(5).upper()
        with self._lock:
            self._keys[key_id] = (issuer, key.public_key())
        return issuer, key_id, pem

    def enqueue(
        self, status: int = 200, body: str = "", headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next feed request with this instead of the feed."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay))

    # -- serving ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Scripted:
        if path.startswith("/v1/"):
            return self._connect_api(method, path, query, headers, body)
        with self._lock:
            self._record(RecordedRequest(method, path, query, headers, body))
            parts = path.strip("/").split("/")
            shaped = (
                len(parts) == 7 and parts[1:3] == ["rss", "customerreviews"]
                and parts[3].startswith("page=") and parts[3][5:].isdigit()
                and parts[4].startswith("id=") and parts[5].lower() == "sortby=mostrecent"
                and parts[6] == "json"
            )
            if not shaped:
                return Scripted(404, json.dumps({"error": "not found"}))
            if self._script:
                return self._script.popleft()
            country, page, app_id = parts[0], int(parts[3][5:]), parts[4][3:]
            reviews = list(self._reviews.get((country, app_id), []))
        return Scripted(200, json.dumps(self._feed(country, app_id, page, reviews)))

    def _feed(
        self, country: str, app_id: str, page: int, reviews: list[dict[str, Any]]
    ) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        if 1 <= page <= MAX_PAGES:
            entries = reviews[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if page == 1 and self.app_entry:
            entries = [app_entry(app_id), *entries]
        last = max(1, min(MAX_PAGES, -(-len(reviews) // PAGE_SIZE)))

        def link(rel: str, number: int) -> dict[str, Any]:
            href = (f"{REAL_HOST}/{country}/rss/customerreviews/page={number}/id={app_id}"
                    "/sortby=mostrecent/json")
            return {"attributes": {"rel": rel, "type": "application/json", "href": href}}

        feed: dict[str, Any] = {
            "author": {"name": {"label": "iTunes Store"},
                       "uri": {"label": "http://www.apple.com/us/itunes/"}},
            "updated": {"label": "2024-05-01T12:00:00-07:00"},
            "rights": {"label": "Copyright 2008 Apple Inc."},
            "title": {"label": "iTunes Store: Customer Reviews"},
            "icon": {"label": "http://itunes.apple.com/favicon.ico"},
            "link": [
                {"attributes": {"rel": "alternate", "type": "text/html",
                                "href": f"https://apps.apple.com/WebObjects/MZStore.woa/wa/"
                                        f"viewGrouping?cc={country}&id=1"}},
                link("self", page), link("first", 1), link("last", last),
                link("previous", max(1, page - 1)), link("next", min(last, page + 1)),
            ],
            "id": {"label": f"{REAL_HOST}/{country}/rss/customerreviews/page={page}/id={app_id}"
                            "/sortby=mostrecent/json"},
        }
        if len(entries) == 1:
            feed["entry"] = entries[0]
        elif entries:
            feed["entry"] = entries
        return {"feed": feed}

    # -- the App Store Connect API (replies) -----------------------------------------------

    def _connect_api(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Scripted:
        with self._lock:
            self._record(RecordedRequest(method, path, query, headers, body))
            answer = self._route(method, path, query, headers, body)
            left = max(0, self.hourly_limit - self.hour_used)
            limit = {"X-Rate-Limit": f"user-hour-lim:{self.hourly_limit};user-hour-rem:{left};"}
            return Scripted(answer.status, answer.body, {**answer.headers, **limit})

    def _route(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> Scripted:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self._authentic(auth[7:]):
            return _apple_error(401, "NOT_AUTHORIZED", "Authentication credentials are missing "
                                "or invalid.", "Provide a properly configured and signed bearer "
                                "token, and make sure that it has not expired.")
        self.hour_used += 1
        if self.hour_used > self.hourly_limit:
            extra = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return _apple_error(429, "RATE_LIMIT_EXCEEDED", "The request rate limit has been "
                                "reached.", "We've received too many requests for this API. "
                                "Please wait and try again or slow down your request rate.",
                                extra)
        match = _RESPONSE_OF.match(path)
        if method == "POST" and path == RESPONSES:
            return self._respond(body)
        if method == "GET" and match is not None:
            review_id = unquote(match["id"])
            if review_id not in self._api_reviews:
                return _not_found("customerReviews", review_id)
            return Scripted(200, {"data": self._responses.get(review_id),
                                  "links": {"self": f"{API_HOST}{path}"}})
        one = _REVIEW.match(path)
        if method == "GET" and one is not None:
            review_id = unquote(one["id"])
            if review_id not in self._api_reviews:
                return _not_found("customerReviews", review_id)
            return Scripted(200, {"data": self._resource(review_id),
                                  "links": {"self": f"{API_HOST}{path}"}})
        listed = _APP_REVIEWS.match(path)
        if method == "GET" and listed is not None:
            return self._list(unquote(listed["app"]), path, query)
        return _apple_error(404, "NOT_FOUND", "The specified resource does not exist",
                            "The path provided does not match a defined resource type.")

    def _respond(self, body: bytes) -> Scripted:
        if not self.roles & WRITE_ROLES:
            return _apple_error(403, "FORBIDDEN_ERROR", "This request is forbidden for security "
                                "reasons", "The API key in use does not allow this request")
        data = parse_json(body)
        data = data.get("data") if isinstance(data, dict) else None
        try:
            text = data["attributes"]["responseBody"] if isinstance(data, dict) else None
            review = data["relationships"]["review"]["data"] if isinstance(data, dict) else {}
            shaped = isinstance(data, dict) and data.get("type") == "customerReviewResponses" \
                and isinstance(text, str) and review.get("type") == "customerReviews" \
                and isinstance(review.get("id"), str)
        except (KeyError, TypeError, AttributeError):
            shaped = False
        if not shaped:
            return _apple_error(400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid "
                                "value", "The request entity is not a valid "
                                "CustomerReviewResponseV1CreateRequest")
        review_id = str(review["id"])
        if review_id not in self._api_reviews:
            return _not_found("customerReviews", review_id)
        if len(text) > RESPONSE_MAX:
            return _apple_error(409, "ENTITY_ERROR.ATTRIBUTE.INVALID", "An attribute value is "
                                "invalid.", f"responseBody may hold at most {RESPONSE_MAX} "
                                "characters")
        existing = self._responses.get(review_id)
        if existing is not None and self.conflict_on_existing:
            return _apple_error(409, "ENTITY_ERROR", "The request entity is not valid.",
                                "A response already exists for this customer review.")
        response_id = existing["id"] if existing is not None else str(uuid.uuid4())
        resource = {
            "type": "customerReviewResponses", "id": response_id,
            "attributes": {"responseBody": text, "state": "PENDING_PUBLISH",
                           "lastModifiedDate": datetime.now(UTC).isoformat(timespec="seconds")},
            "relationships": {"review": {"data": {"type": "customerReviews", "id": review_id}}},
            "links": {"self": f"{API_HOST}{RESPONSES}/{response_id}"},
        }
        self._responses[review_id] = resource
        return Scripted(201, {"data": resource,
                              "links": {"self": f"{API_HOST}{RESPONSES}/{response_id}"}})

    def _resource(self, review_id: str) -> dict[str, Any]:
        link = f"{API_HOST}/v1/customerReviews/{review_id}"
        return {"type": "customerReviews", "id": review_id,
                "attributes": dict(self._api_reviews[review_id]["attributes"]),
                "relationships": {"response": {"links": {
                    "self": f"{link}/relationships/response", "related": f"{link}/response"}}},
                "links": {"self": link}}

    def _list(self, app_id: str, path: str, query: str) -> Scripted:
        """``GET /v1/apps/{id}/customerReviews`` (see the module's docstring)."""
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = sorted(set(params) - _LIST_PARAMS)
        if unknown:
            return _parameter_error(f"'{unknown[0]}' is not a valid query parameter for this "
                                    "resource")
        if app_id not in self._apps:
            return _not_found("apps", app_id)
        sort = params.get("sort", "createdDate")
        limit_text = params.get("limit", "50")
        if sort not in _SORTS:
            return _parameter_error(f"'{sort}' is not a valid value for 'sort'")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_MAX:
            return _parameter_error(f"'limit' must be 1 to {LIST_MAX}, not '{limit_text}'")
        limit = int(limit_text)
        try:
            offset = int(json.loads(_unb64(params.get("cursor", "")))["offset"]) \
                if "cursor" in params else 0
        except (ValueError, KeyError, TypeError):
            return _parameter_error("'cursor' is not a valid cursor")
        reviews = [(rid, r["attributes"]) for rid, r in self._api_reviews.items()
                   if r["app"] == app_id]
        if "filter[territory]" in params:
            wanted = set(params["filter[territory]"].split(","))
            reviews = [r for r in reviews if r[1]["territory"] in wanted]
        if "filter[rating]" in params:
            ratings = set(params["filter[rating]"].split(","))
            reviews = [r for r in reviews if str(r[1]["rating"]) in ratings]
        if "exists[publishedResponse]" in params:
            has = params["exists[publishedResponse]"] == "true"
            reviews = [r for r in reviews if (r[0] in self._responses) == has]
        key = sort.lstrip("-")
        reviews.sort(key=lambda r: (datetime.fromisoformat(r[1]["createdDate"])
                                    if key == "createdDate" else r[1]["rating"]),
                     reverse=sort.startswith("-"))
        page = reviews[offset : offset + limit]
        links: dict[str, str] = {"self": f"{API_HOST}{path}" + (f"?{query}" if query else "")}
        if offset + limit < len(reviews):
            cursor = base64.urlsafe_b64encode(json.dumps({"offset": str(offset + limit)})
                                              .encode()).decode().rstrip("=")
            kept = {k: v for k, v in params.items() if k != "cursor"}
            links["next"] = f"{API_HOST}{path}?{urlencode({'cursor': cursor, **kept})}"
        return Scripted(200, {"data": [self._resource(rid) for rid, _ in page], "links": links,
                              "meta": {"paging": {"total": len(reviews), "limit": limit}}})

    def _authentic(self, token: str) -> bool:
        """An ES256 JWT signed by a known key, for App Store Connect, not expired."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        try:
            head, payload, signature = token.split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(payload))
            raw = _unb64(signature)
        except ValueError:
            return False
        known = self._keys.get(str(header.get("kid")))
        if known is None or header.get("alg") != "ES256" or len(raw) != 64:
            return False
        issuer, public_key = known
        now, exp = time.time(), claims.get("exp")
        if claims.get("iss") != issuer or claims.get("aud") != "appstoreconnect-v1" or \
                not isinstance(exp, int) or not now < exp <= now + 1200:
            return False
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        try:
            public_key.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def _apple_error(status: int, code: str, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> Scripted:
    """Apple's JSON:API error document."""
    error = {"id": uuid.uuid4().hex.upper(), "status": str(status), "code": code,
             "title": title, "detail": detail}
    return Scripted(status, {"errors": [error]}, dict(headers or {}))


def _parameter_error(detail: str) -> Scripted:
    return _apple_error(400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid value",
                        detail)


def _connect_attributes(entry: Any, country: str) -> dict[str, Any] | None:
    """The customerReviews attributes App Store Connect shows for a feed entry; None for what
    is not a well-formed review."""
    try:
        rating = int(entry["im:rating"]["label"])
        created = datetime.fromisoformat(entry["updated"]["label"])
        body = entry["content"]["label"]
        title = entry.get("title", {}).get("label")
        nickname = entry["author"]["name"]["label"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if created.tzinfo is None or not isinstance(body, str) or not isinstance(nickname, str):
        return None
    return {"rating": rating, "title": title if isinstance(title, str) else None, "body": body,
            "reviewerNickname": nickname, "createdDate": created.isoformat(timespec="seconds"),
            "territory": TERRITORIES.get(country.lower(), country.upper())}


def _not_found(kind: str, resource_id: str) -> Scripted:
    return _apple_error(404, "NOT_FOUND", "The specified resource does not exist",
                        f"There is no resource of type '{kind}' with id '{resource_id}'")


def _unb64(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


@lru_cache(maxsize=1)
def _ec_key() -> Any:
    """One P-256 key for every API key of a test run."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())
