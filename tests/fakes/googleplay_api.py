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

Replies (issue 18): the same fake also serves the Google Play Developer API's "Reply to Reviews"
and Google's OAuth token endpoint, in the documented shapes, over the reviews added above (a
review added for the RPC is the same review for the API, and a reply shows in both)::

    key = play.service_account()          # a service account JSON key whose token_uri is ours
    ...
    assert [r.path for r in play.replies_posted()] == [...]

- ``POST /token``: the JWT bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:
  jwt-bearer&assertion=<RS256 JWT>``), the signature checked against the account's key, ``aud``
  the token URI, ``exp`` at most an hour after ``iat``; answers ``{"access_token", "expires_in":
  3599, "token_type": "Bearer"}`` granting the asked ``scope`` (or :attr:`granted_scopes`), or
  400 ``invalid_grant``;
- ``GET /androidpublisher/v3/applications/{package}/reviews/{reviewId}``: the Review resource
  (``reviewId``, ``authorName``, ``comments`` with a ``userComment`` and, once replied, a
  ``developerComment {text, lastModified}``);
- ``GET /androidpublisher/v3/applications/{package}/reviews`` (``reviews.list``):
  ``{"reviews": [...], "tokenPagination": {"nextPageToken"}, "pageInfo": {"totalResults",
  "resultPerPage", "startIndex"}}``, the most recently written or edited first, ``maxResults``
  (default 10, at most 100) and ``token``; as Google documents, only reviews with text, written
  or edited in the last week (before :attr:`now`, or the real time when None);
- ``POST …/reviews/{reviewId}:reply`` with ``{"replyText"}``: creates or *replaces* the one
  developer reply (HTML tags stripped), answers ``{"result": {"replyText", "lastEdited"}}``;
  400 ``INVALID_ARGUMENT`` past 350 characters.
Errors are Google's JSON (``{"error": {"code", "message", "errors": [{"reason"}], "status"}}``):
401 for an unknown token; 403 with ``WWW-Authenticate: … error="insufficient_scope"`` when the
token lacks the androidpublisher scope, 403 ``permissionDenied`` when :attr:`can_reply` is False
(no "Reply to reviews" permission); 404 for an unknown package or a review deleted with
:meth:`FakeGooglePlay.delete_review`; 429 ``RESOURCE_EXHAUSTED`` for the next
:attr:`quota_exhausted` API requests, with a ``google.rpc.RetryInfo`` of :attr:`retry_delay`
(and ``Retry-After`` when :attr:`retry_after` is set). The ``reviewId`` in the path may be
percent-encoded (``gp%3A…``); the verb is the last ``:reply``.

Which id. Google documents the API's ``reviewId`` only as "Unique identifier for this review",
never as the id the store page (and google-play-scraper) shows. By default this fake uses one id
for both; ``FakeGooglePlay(api_ids="distinct")`` gives each review another id in the API
(``gp:AOqpTO…``, :meth:`FakeGooglePlay.api_id`), so the RPC's id answers 404 there.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from hashlib import sha256
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse, parse_json

RPC_PATH = "/_/PlayStoreUi/data/batchexecute"
TOKEN_PATH = "/token"
API_PREFIX = "/androidpublisher/v3/applications/"
PLAY_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REPLY_MAX = 350
_REVIEW_PATH = re.compile(
    r"^/androidpublisher/v3/applications/(?P<package>[^/]+)/reviews/(?P<review>[^/]+?)"
    r"(?P<verb>:reply)?$")
_TAGS = re.compile(r"<[^>]*>")
_LIST_PATH = re.compile(r"^/androidpublisher/v3/applications/(?P<package>[^/]+)/reviews$")
LIST_MAX = 100
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
    methods = ("GET", "POST")

    granted_scopes: set[str] | None = None
    """Scopes the token endpoint grants; None: those the assertion asks for."""
    can_reply = True
    """Whether the service account has Play Console's "Reply to reviews" permission."""
    quota_exhausted = 0
    """The next this many Developer API requests answer 429 RESOURCE_EXHAUSTED."""
    retry_delay: str | None = "37s"
    """The 429's ``google.rpc.RetryInfo`` ``retryDelay`` (None: no RetryInfo)."""
    retry_after: str | None = None
    """The 429's ``Retry-After`` header (None: not sent, as Google usually does)."""
    now: datetime | None = None
    """The moment ``reviews.list``'s last week ends (None: the real time)."""

    def __init__(self, *, api_ids: Literal["same", "distinct"] = "same") -> None:
        super().__init__()
        self.distinct_ids = api_ids == "distinct"
        self._reviews: dict[str, list[list[Any]]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self._api_reviews: dict[tuple[str, str], dict[str, Any]] = {}  # (app, API id) → Review
        self._api_ids: dict[tuple[str, str], str] = {}  # (app, RPC id) → API id
        self._accounts: dict[str, tuple[Any, str]] = {}  # client_email → (public key, key id)
        self._access: dict[str, set[str]] = {}  # access token → granted scopes
        self.issued_tokens: list[str] = []

    # -- scripting and inspection ----------------------------------------------------------

    def add_reviews(self, app_id: str, reviews: list[list[Any]]) -> None:
        """Put ``reviews`` (newest first) on top of the app's reviews; [] makes a known app."""
        with self._lock:
            self._reviews[app_id] = list(reviews) + self._reviews.get(app_id, [])
            for review in reviews:
                try:
                    resource = _api_review(review)
                except (IndexError, KeyError, TypeError, ValueError):
                    continue  # a malformed review (a collector test's): the API never has those
                api_id = str(review[0])
                if self.distinct_ids:
                    digest = sha256(f"{app_id}:{api_id}".encode()).hexdigest()
                    api_id = f"gp:AOqpTO{digest[:40]}"
                resource["reviewId"] = api_id
                self._api_ids[(app_id, str(review[0]))] = api_id
                self._api_reviews[(app_id, api_id)] = resource

    def api_id(self, app_id: str, review_id: str) -> str:
        """The Developer API's id of the review the RPC calls ``review_id`` (KeyError: none)."""
        with self._lock:
            return self._api_ids[(app_id, review_id)]

    def delete_review(self, app_id: str, review_id: str) -> None:
        """The author deleted the review (its RPC id): gone from the RPC and the API."""
        with self._lock:
            self._reviews[app_id] = [r for r in self._reviews.get(app_id, [])
                                     if r[0] != review_id]
            api_id = self._api_ids.pop((app_id, review_id), review_id)
            self._api_reviews.pop((app_id, api_id), None)

    def api_review(self, app_id: str, review_id: str) -> dict[str, Any] | None:
        """The Developer API's Review resource (a copy) of its API id, or None."""
        with self._lock:
            review = self._api_reviews.get((app_id, review_id))
            return json.loads(json.dumps(review)) if review is not None else None

    def replies_posted(self) -> list[PlayRequest]:
        """Every ``…:reply`` request received, oldest first."""
        return [r for r in self.requests if r.path.endswith(":reply")]

    def reviews_listed(self) -> list[PlayRequest]:
        """Every ``reviews.list`` request received, oldest first."""
        return [r for r in self.requests
                if r.method == "GET" and _LIST_PATH.match(r.path) is not None]

    def service_account(self, email: str = "replies@acme-play.iam.gserviceaccount.com"
                        ) -> dict[str, str]:
        """A service account JSON key this fake's token endpoint accepts (token_uri is it)."""
        from cryptography.hazmat.primitives import serialization

        key = _rsa_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        key_id = secrets.token_hex(20)
        with self._lock:
            self._accounts[email] = (key.public_key(), key_id)
        return {
            "type": "service_account", "project_id": "acme-play", "private_key_id": key_id,
            "private_key": pem, "client_email": email, "client_id": "104851234567890123456",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.base_url + TOKEN_PATH,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

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
        if path == TOKEN_PATH or path.startswith(API_PREFIX):
            return self._developer_api(method, path, raw_query, headers, body)
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

    # -- the Developer API (replies) and the token endpoint ---------------------------------

    def _developer_api(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        with self._lock:
            self._record(PlayRequest(method, path, raw_query, headers, body))
            if path == TOKEN_PATH:
                return self._token(method, body)
            auth = headers.get("authorization", "")
            scopes = self._access.get(auth[7:]) if auth.startswith("Bearer ") else None
            if scopes is None:
                return _google_error(
                    401, "UNAUTHENTICATED", "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                         'error="invalid_token"'})
            if self.quota_exhausted > 0:
                self.quota_exhausted -= 1
                return self._quota_answer()
            if PLAY_SCOPE not in scopes:
                return _google_error(
                    403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "Request had insufficient authentication scopes.",
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                         f'error="insufficient_scope", scope="{PLAY_SCOPE}"'})
            listed = _LIST_PATH.match(path)
            if listed is not None and method == "GET":
                return self._list(unquote(listed["package"]), raw_query)
            match = _REVIEW_PATH.match(path)
            if match is None:
                return _google_error(404, "NOT_FOUND", "notFound",
                                     "Requested entity was not found.")
            package, review_id = unquote(match["package"]), unquote(match["review"])
            if package not in self._reviews:
                return _google_error(404, "NOT_FOUND", "applicationNotFound",
                                     "No application was found for the given package name.")
            review = self._api_reviews.get((package, review_id))
            if match["verb"] and method == "POST":
                return self._reply(package, review_id, review, body)
            if match["verb"] or method != "GET":
                return _google_error(404, "NOT_FOUND", "notFound",
                                     "Requested entity was not found.")
            if review is None:
                return _google_error(404, "NOT_FOUND", "reviewNotFound",
                                     "No review found for the given review id.")
            return ScriptedResponse(200, review)

    def _reply(self, package: str, review_id: str, review: dict[str, Any] | None,
               body: bytes) -> ScriptedResponse:
        if not self.can_reply:
            return _google_error(
                403, "PERMISSION_DENIED", "permissionDenied",
                "The current user has insufficient permissions to perform the requested "
                "operation.")
        data = parse_json(body)
        text = data.get("replyText") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _google_error(400, "INVALID_ARGUMENT", "badRequest",
                                 "Invalid value for replyText.")
        if review is None:
            return _google_error(404, "NOT_FOUND", "reviewNotFound",
                                 "No review found for the given review id.")
        text = _TAGS.sub("", text)
        if len(text) > REPLY_MAX:
            return _google_error(400, "INVALID_ARGUMENT", "replyTooLong",
                                 f"The reply must be at most {REPLY_MAX} characters.")
        edited = {"seconds": str(int(time.time())), "nanos": 0}
        comments = [c for c in review["comments"] if "developerComment" not in c]
        review["comments"] = [*comments, {"developerComment": {"text": text,
                                                               "lastModified": edited}}]
        for item in self._reviews.get(package, []):  # the store page shows it too
            if self._api_ids.get((package, str(item[0]))) == review_id:
                item[7] = [None, text, [int(edited["seconds"]), 0]]
        return ScriptedResponse(200, {"result": {"replyText": text, "lastEdited": edited}})

    def _list(self, package: str, raw_query: str) -> ScriptedResponse:
        """``reviews.list``: the last week's reviews with text, newest first, a page of them."""
        params = {k: v[-1] for k, v in parse_qs(raw_query).items()}
        if package not in self._reviews:
            return _google_error(404, "NOT_FOUND", "applicationNotFound",
                                 "No application was found for the given package name.")
        size = params.get("maxResults", "10")
        if not size.isdigit() or not 1 <= int(size) <= LIST_MAX:
            return _google_error(400, "INVALID_ARGUMENT", "badRequest",
                                 f"Invalid value for maxResults: {size}")
        since = (self.now or datetime.now(UTC)) - timedelta(days=7)

        def modified(review: dict[str, Any]) -> int:
            return int(review["comments"][0]["userComment"]["lastModified"]["seconds"])

        reviews = sorted((r for (app, _), r in self._api_reviews.items() if app == package
                          and r["comments"][0]["userComment"]["text"]
                          and modified(r) >= since.timestamp()), key=modified, reverse=True)
        start = 0
        if "token" in params:
            known = self._tokens.get(params["token"])
            if known is None or known[0] != package:
                return _google_error(400, "INVALID_ARGUMENT", "badRequest",
                                     "Invalid pagination token.")
            start = known[1]
        page = reviews[start : start + int(size)]
        body: dict[str, Any] = {
            "reviews": [json.loads(json.dumps(r)) for r in page],
            "pageInfo": {"totalResults": len(reviews), "resultPerPage": int(size),
                         "startIndex": start}}
        if start + int(size) < len(reviews):
            token = f"api-{len(self._tokens):06d}"
            self._tokens[token] = (package, start + int(size))
            body["tokenPagination"] = {"nextPageToken": token}
        return ScriptedResponse(200, body)

    def _quota_answer(self) -> ScriptedResponse:
        details: list[dict[str, Any]] = [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {"service": "androidpublisher.googleapis.com",
                         "quota_limit": "defaultPerMinutePerProject"},
        }]
        if self.retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": self.retry_delay})
        message = ("Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' "
                   "of service 'androidpublisher.googleapis.com'.")
        body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED",
                          "details": details}}
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return ScriptedResponse(429, body, headers)

    def _token(self, method: str, body: bytes) -> ScriptedResponse:
        """The OAuth 2.0 JWT bearer grant, as Google's token endpoint checks it."""
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if method != "POST" or form.get("grant_type") != JWT_GRANT:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type: "
                                f"{form.get('grant_type', '')}")
        claims = self._verified(form.get("assertion", ""))
        if isinstance(claims, ScriptedResponse):
            return claims
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or \
                exp < now or iat > now + 300:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived "
                                "token (60 minutes) and in a reasonable timeframe. Check your "
                                "iat and exp values in the JWT claim.")
        if claims.get("aud") != self.base_url + TOKEN_PATH:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        asked = set(str(claims.get("scope") or "").split())
        granted = set(self.granted_scopes) if self.granted_scopes is not None else asked
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        self._access[token] = granted
        self.issued_tokens.append(token)
        return ScriptedResponse(200, {"access_token": token, "expires_in": 3599,
                                      "token_type": "Bearer"})

    def _verified(self, assertion: str) -> dict[str, Any] | ScriptedResponse:
        """The assertion's claims when its RS256 signature is the account's; else the error."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        bad = _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            head, payload, signature = assertion.split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(payload))
        except ValueError:
            return _oauth_error(400, "invalid_request", "Invalid assertion format.")
        account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            return _oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        public_key, key_id = account
        if header.get("alg") != "RS256" or header.get("kid", key_id) != key_id:
            return bad
        try:
            public_key.verify(_unb64(signature), f"{head}.{payload}".encode(),
                              padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return bad
        return dict(claims)


def _api_review(review: list[Any]) -> dict[str, Any]:
    """The Developer API's Review resource for a review array of the RPC."""
    seconds, nanos = review[5]
    user: dict[str, Any] = {
        "text": review[4] or "", "lastModified": {"seconds": str(seconds), "nanos": nanos},
        "starRating": review[2], "reviewerLanguage": "en", "appVersionName": review[10],
        "thumbsUpCount": review[6], "thumbsDownCount": 0,
    }
    comments: list[dict[str, Any]] = [{"userComment": user}]
    if review[7]:
        comments.append({"developerComment": {
            "text": review[7][1],
            "lastModified": {"seconds": str(review[7][2][0]), "nanos": review[7][2][1]}}})
    return {"reviewId": review[0], "authorName": review[1][0], "comments": comments}


def _google_error(status: int, code: str, reason: str, message: str,
                  headers: dict[str, str] | None = None) -> ScriptedResponse:
    """Google's JSON error body (both the ``errors`` list and the ``status`` name)."""
    body = {"error": {"code": status, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}],
                      "status": code}}
    return ScriptedResponse(status, body, dict(headers or {}))


def _oauth_error(status: int, error: str, description: str) -> ScriptedResponse:
    return ScriptedResponse(status, {"error": error, "error_description": description})


def _unb64(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


@lru_cache(maxsize=1)
def _rsa_key() -> Any:
    """One RSA key for every service account of a test run (generating one takes a while)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
