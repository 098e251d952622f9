"""Replies on the App Store: the developer response to a customer review (App Store Connect API).

What it answers. The appstore source stores a review by the id Apple's public customer-reviews
feed gives it (``platform_id``, a number such as ``11053452211``). The collector needs no
credentials; answering needs the App Store Connect API, over httpx as the collectors and sinks
speak HTTP::

    POST {base_url}/v1/customerReviewResponses
         {"data": {"type": "customerReviewResponses", "attributes": {"responseBody": "…"},
                   "relationships": {"review": {"data": {"type": "customerReviews",
                                                         "id": "<review id>"}}}}}
         →  201 {"data": {"type": "customerReviewResponses", "id": "…",
                          "attributes": {"responseBody", "lastModifiedDate", "state"}}, …}
    GET  {base_url}/v1/customerReviews/{id}/response
         →  200 {"data": {…the response…}} or {"data": null} (none yet); 404: no such review
    GET  {base_url}/v1/apps/{appId}/customerReviews?sort=-createdDate&limit=200
                                                   &filter[territory]=USA
         →  200 {"data": [{"type": "customerReviews", "id": "00000028-b08c-0014-…",
                           "attributes": {"rating", "title", "body", "reviewerNickname",
                                          "createdDate", "territory"}}, …],
                 "links": {"self", "next"}}

Which review. App Store Connect knows a review by an id of its own (Apple's reference, "List
all customer reviews for an app": ``00000028-b08c-0014-729e-fbd500000000``), not by the feed's
number, and no documented call maps one to the other. So a ``platform_id`` that is not in App
Store Connect's form is looked up (:meth:`AppStoreWriter._connect_id`): the app's reviews
(``raw["app_id"]``, the numeric Apple ID, which is also the ``apps`` resource id) newest first,
200 a page, in the post's storefront (``raw["country"]`` as Apple's three-letter territory),
following ``links.next`` (its path and query, against ``base_url``: the token never goes to a
host a response names) for at most :data:`LIST_PAGES` pages, and stopping after a page that
reaches reviews older than the post when its date is known. A review is this post's when its
reviewer nickname is the post's author and its title is the post's (white space collapsed), and
— where the collector kept them in ``raw`` — its body (``content``), ``rating`` and date
(``updated``; App Store Connect's ``createdDate`` no earlier than a day before it). Exactly one
such review: its id is used; none, or several (a guess could answer a stranger): the reply is
parked, not retried ("the review could not be found in App Store Connect: …"). Nothing new is
stored: every writer finds the review again the same way (the id is kept in memory for the
process's life), so the :meth:`AppStoreWriter.find` of a retry — in this process or after a
crash, in another — reads the same review's response. An id already in App Store Connect's form
is used as it is.

Credentials. A team API key: ``issuer_id``, ``key_id`` and the key's ``.p8`` private key
(``private_key`` through ``{"$env": NAME}``, or ``private_key_file``). Each request carries a JWT
signed with it (ES256; header ``kid``; claims ``iss``, ``iat``, ``exp`` 15 minutes later and
``aud: appstoreconnect-v1``), made here and renewed a minute before it ends, or at once when
Apple refuses it (401). The key needs the Admin, App Manager or Customer Support role. The key
and every token are registered secrets (redacted from logs).

Never twice. Apple keeps ONE response per review. Before a retry the sender asks
:meth:`AppStoreWriter.find`, which GETs the review's response and recognises this reply by its
text (white space collapsed): a response has an id, but Apple gives it only in the answer that
may be lost, so text is what tells this reply from another. Apple's reference says a POST for a
review that has a response replaces it; older answers were 409 CONFLICT. Both are handled: a
409 (also Apple's answer to an attribute it refuses) looks at the review's response and takes it
when it is this reply, and otherwise parks the reply with Apple's words — an existing response
written by someone else is never deleted to make room. The remote id recorded is the response's
id, the link the app's reviews page (responses appear there once Apple publishes them: ``state``
goes from ``PENDING_PUBLISH`` to ``PUBLISHED``).

Notification. Apple notifies the customer of a response itself; there is no handle to mention.

Limits. 5,970 characters (Apple's limit for a response; refused here, never cut). Rate limit:
a rolling hour per API key, told in every answer's ``X-Rate-Limit: user-hour-lim:3600;
user-hour-rem:N;``; a 429 (``RATE_LIMIT_EXCEEDED``) waits for ``Retry-After`` when sent, else
300 s when the hour's budget is spent (``user-hour-rem:0``: a rolling hour frees requests as they
age, at an unknown moment), else 60 s. Finding a feed review costs up to :data:`LIST_PAGES`
requests of that budget (once per process and review). Only the newest ``LIST_PAGES × 200``
reviews of the storefront are searched, and a review its author edited since it was collected
(another title or body) is not recognised: both park the reply with that said. A review App
Store Connect does not know (deleted by its author) answers 404 (parked).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode, urlsplit

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.replies.jws import compact
from alerts.sinks._http import https_base_url, json_object, request, sink_client
from alerts.sinks.base import error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, MissingDependency, RateLimited
from listener.core.log import register_secret, register_short_lived_secret

log = logging.getLogger(__name__)

RESPONSES = "/v1/customerReviewResponses"
RESPONSE_OF = "/v1/customerReviews/{review}/response"
REVIEWS_OF_APP = "/v1/apps/{app}/customerReviews"
LIST_LIMIT = 200  # Apple's largest page
LIST_PAGES = 5  # pages read to find a feed review: its storefront's 1,000 newest reviews
OLDER_SLACK = timedelta(days=1)
KEPT_IDS = 1024  # feed id → App Store Connect id, remembered per writer
NOT_FOUND = "the review could not be found in App Store Connect"
_CONNECT_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                         r"[0-9A-Fa-f]{12}$")
AUDIENCE = "appstoreconnect-v1"
TOKEN_SECONDS = 900  # Apple refuses tokens that live longer than 20 minutes
RENEW_BEFORE = 60.0
ROLES = "Admin, App Manager or Customer Support"
SPENT_WAIT = 300.0  # 429 with the hour's budget spent (user-hour-rem:0)
DEFAULT_WAIT = 60.0
_REMAINING = re.compile(r"user-hour-rem:\s*(\d+)")
_AGAIN = "; the retry first reads the review's response, so it is not written twice"


def _pem(text: str) -> str:
    """``text`` when it looks like a PEM private key; ValueError (never quoting it) otherwise."""
    if "-----BEGIN PRIVATE KEY-----" not in text and "-----BEGIN EC PRIVATE KEY-----" not in text:
        raise ValueError("private_key must be the .p8 file's content (-----BEGIN PRIVATE "
                         "KEY----- …)")
    return text


class AppStoreAccountConfig(AccountConfig):
    """Keys of a ``type: appstore`` reply account: one App Store Connect team API key."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["appstore"] = "appstore"
    issuer_id: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
        description="the team's issuer id (App Store Connect → Users and Access → Integrations)")
    key_id: str = Field(pattern=r"^[A-Za-z0-9]{1,40}$", description="the API key's id")
    private_key: str | None = Field(
        None, repr=False,
        description='the key\'s .p8 file content, a secret ({"$env": NAME})')
    private_key_file: str | None = Field(None, description="instead: the path of the .p8 file")
    base_url: str = Field("https://api.appstoreconnect.apple.com",
                          description="the App Store Connect API; change only for tests")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return https_base_url(value, "base_url")

    @field_validator("private_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return _pem(value) if value is not None else None

    @model_validator(mode="after")
    def _one_key(self) -> AppStoreAccountConfig:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of private_key and private_key_file")
        return self


class AppStoreWriter:
    """Writes the developer response to an App Store customer review."""

    Config: ClassVar[type[AccountConfig]] = AppStoreAccountConfig
    type: ClassVar[str] = "appstore"
    max_chars: ClassVar[int] = 5970

    def __init__(self, config: AppStoreAccountConfig, timeout: float) -> None:
        pem = config.private_key
        if pem is None:
            try:
                pem = Path(str(config.private_key_file)).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"reply account {config.name}: cannot read private_key_file: "
                                 f"{exc.strerror}") from None
        register_secret(pem)
        try:
            _pem(pem)
        except ValueError as exc:
            raise ValueError(f"reply account {config.name}: {exc}") from None
        self.name = config.name
        self._config = config
        self._timeout = timeout
        self._sign = _es256(pem, config.name)
        self._client = sink_client(
            f"App Store reply account '{config.name}'", timeout=timeout,
            base_url=config.base_url,
            headers={"Accept": "application/json", "User-Agent": "social-listener"})
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_until = 0.0  # time.monotonic() at which the token is renewed
        self._found: dict[tuple[str, str], str] = {}  # (app, feed id) → App Store Connect id

    def __repr__(self) -> str:
        return f"AppStoreWriter(name={self.name!r}, key_id={self._config.key_id!r})"

    # -- the protocol ---------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        text = self._text(reply)
        review = self._connect_id(reply)
        body = {"data": {
            "type": "customerReviewResponses",
            "attributes": {"responseBody": text},
            "relationships": {"review": {"data": {"type": "customerReviews", "id": review}}},
        }}
        response = self._api(reply, "POST", RESPONSES, "post the response", json=body)
        if response.status_code in (200, 201):
            data = json_object(response).get("data")
            remote = data.get("id") if isinstance(data, dict) else None
            if not isinstance(remote, str) or not remote:
                raise DeliveryError(f"{self._where(reply)}: HTTP {response.status_code} without "
                                    "the response's id; is base_url App Store Connect?",
                                    status=response.status_code,
                                    body_snippet=response.text[:300], retryable=True)
            log.info("%s: responded to review %s (response %s)", self._where(reply), review,
                     remote)
            return Sent(remote, reply.url)
        if response.status_code == 409:
            found = self._matching(reply, review, _plain(text))
            if found is not None:
                log.info("%s: review %s already has this response (an earlier attempt)",
                         self._where(reply), review)
                return found
        raise self._error(reply, response, "post the response", review)

    def find(self, reply: Outgoing) -> Sent | None:
        wanted = _plain(self._text(reply))
        return self._matching(reply, self._connect_id(reply), wanted)

    def close(self) -> None:
        self._client.close()

    # -- which review ---------------------------------------------------------------------

    def _connect_id(self, reply: Outgoing) -> str:
        """The review's App Store Connect id: the post's id when it has that form, else the one
        review of the app that matches the post (see the module's docstring)."""
        given = _review(reply)
        if _CONNECT_ID.match(given):
            return given
        key = (str(reply.raw.get("app_id") or ""), given)
        with self._lock:
            known = self._found.get(key)
        if known is not None:
            return known
        found = self._look_up(reply, given)
        with self._lock:
            if len(self._found) >= KEPT_IDS:
                del self._found[next(iter(self._found))]
            self._found[key] = found
        return found

    def _look_up(self, reply: Outgoing, given: str) -> str:
        where = f"{self._where(reply)}: {NOT_FOUND}"
        app = reply.raw.get("app_id")
        if not isinstance(app, str | int) or not str(app).isdigit():
            raise DeliveryError(f"{where}: review {given} is the feed's id and the post has no "
                                "numeric app id (raw.app_id) to look it up by; was it collected "
                                "by an appstore source?", retryable=False)
        post = _PostedReview.of(reply)
        if post.nickname is None and post.title is None:
            raise DeliveryError(f"{where}: review {given} is the feed's id and the post has "
                                "neither author nor title to recognise it by", retryable=False)
        query = {"sort": "-createdDate", "limit": str(LIST_LIMIT)}
        if post.territory is not None:
            query["filter[territory]"] = post.territory
        path: str | None = f"{REVIEWS_OF_APP.format(app=app)}?{urlencode(query)}"
        matches: list[str] = []
        read = pages = 0
        while path is not None and pages < LIST_PAGES:
            response = self._api(reply, "GET", path, "list the app's customer reviews")
            if response.status_code == 404:
                raise DeliveryError(f"{where}: App Store Connect knows no app {app} (HTTP 404); "
                                    "is the API key's team the app's?", status=404,
                                    retryable=False)
            if response.status_code != 200:
                raise self._error(reply, response, "list the app's customer reviews", given)
            document = json_object(response)
            data = document.get("data")
            if not isinstance(data, list):
                raise DeliveryError(f"{self._where(reply)}: HTTP 200 without a list of reviews; "
                                    "is base_url App Store Connect?", status=200,
                                    body_snippet=response.text[:300], retryable=True)
            pages += 1
            older = False
            for item in data:
                attributes = item.get("attributes") if isinstance(item, dict) else None
                if not isinstance(attributes, dict):
                    continue
                read += 1
                if post.matches(attributes) and isinstance(item.get("id"), str):
                    matches.append(item["id"])
                older = older or post.is_newer_than(attributes)
            path = None if older else _next(document)
        if len(matches) == 1:
            log.info("%s: the feed's review %s is %s in App Store Connect", self._where(reply),
                     given, matches[0])
            return matches[0]
        storefront = f" in {post.territory}" if post.territory else ""
        if matches:
            raise DeliveryError(f"{where}: {len(matches)} reviews of app {app}{storefront} match "
                                f"the post ({post.describe()}); answering one could answer a "
                                "stranger: reply from App Store Connect", retryable=False)
        reach = (f"the {read} newest reviews" if path is not None else f"all {read} reviews")
        raise DeliveryError(f"{where}: none of {reach} of app {app}{storefront} is the post's "
                            f"({post.describe()}); it may have been edited or deleted since it "
                            "was collected", retryable=False)

    # -- requests -------------------------------------------------------------------------

    def _matching(self, reply: Outgoing, review: str, wanted: str) -> Sent | None:
        """The review's response when its text is ``wanted``; None when it has none, another
        one, or the review is gone."""
        response = self._api(reply, "GET", RESPONSE_OF.format(review=quote(review, safe="")),
                             "read the review's response")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(reply, response, "read the review's response", review)
        data = json_object(response).get("data")
        if not isinstance(data, dict):
            return None  # {"data": null}: no response yet
        attributes = data.get("attributes")
        body = attributes.get("responseBody") if isinstance(attributes, dict) else None
        remote = data.get("id")
        if isinstance(body, str) and _plain(body) == wanted and isinstance(remote, str):
            return Sent(remote, reply.url)
        return None

    def _api(self, reply: Outgoing, method: str, path: str, action: str,
             **kwargs: Any) -> httpx.Response:
        """One request with a valid token; a refused token (401) that was not new is made
        again once."""
        while True:
            token, fresh = self._bearer()
            response = request(
                self._client, method, path, where=self._where(reply), service="App Store Connect",
                action=action, timeout=self._timeout,
                maybe_done=_AGAIN if method == "POST" else "",
                headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401 or fresh:
                return response
            with self._lock:
                if self._token == token:
                    self._token = None

    def _bearer(self) -> tuple[str, bool]:
        """The kept token, or a new one; and whether it is new."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_until:
                return self._token, False
            started, now = time.monotonic(), int(time.time())
            header = {"alg": "ES256", "kid": self._config.key_id, "typ": "JWT"}
            claims = {"iss": self._config.issuer_id, "iat": now, "exp": now + TOKEN_SECONDS,
                      "aud": AUDIENCE}
            token = compact(header, claims, self._sign)
            register_short_lived_secret(token)
            self._token, self._token_until = token, started + TOKEN_SECONDS - RENEW_BEFORE
            return token, True

    # -- answers --------------------------------------------------------------------------

    def _error(self, reply: Outgoing, response: httpx.Response, action: str,
               review: str) -> Exception:
        """Map Apple's answer: 429 waits, what retrying cannot fix parks, the rest retries."""
        status, where = response.status_code, f"{self._where(reply)}: cannot {action}"
        code, detail = _apple_error(response)
        label = " ".join(p for p in (f"HTTP {status}", code) if p)
        said = f" ({detail})" if detail else ""
        if status == 429:
            wait = _wait(response)
            return RateLimited(f"{where}: rate-limited by App Store Connect ({label}); retry in "
                               f"{wait:g}s", wait)
        if status == 401:
            advice = ("App Store Connect refused the API token: check issuer_id, key_id and the "
                      "private key, that the key is not revoked, and this machine's clock")
        elif status == 403:
            advice = (f"the API key may not respond to customer reviews: it needs the {ROLES} "
                      "role (App Store Connect → Users and Access → Integrations), and the "
                      "team's agreements must be in effect")
        elif status == 404:
            advice = (f"review {review} is gone (deleted by its author) or unknown to App Store "
                      "Connect")
        elif status == 409:
            advice = ("Apple refused the response; if the review already has a response written "
                      "elsewhere, it was left alone")
        elif status in (400, 422):
            advice = "Apple refused the request as written"
        else:
            mapped = error_for_status(status, detail)
            return DeliveryError(f"{where}: {label}{said}", status=status, body_snippet=detail,
                                 retryable=mapped.retryable)
        return DeliveryError(f"{where}: {label}{said}: {advice}", status=status,
                             body_snippet=detail, retryable=False)

    # -- helpers --------------------------------------------------------------------------

    def _text(self, reply: Outgoing) -> str:
        """The response as sent; too long is refused, never cut."""
        text = reply.text.strip()
        if not text:
            raise DeliveryError(f"{self._where(reply)}: the reply is empty", retryable=False)
        if len(text) > self.max_chars:
            raise DeliveryError(f"{self._where(reply)}: the reply is {len(text)} characters; "
                                f"the App Store allows {self.max_chars}: shorten it",
                                retryable=False)
        return text

    def _where(self, reply: Outgoing) -> str:
        return f"App Store account '{self.name}' (reply {reply.reply_id})"


def _review(reply: Outgoing) -> str:
    review = reply.platform_id or str(reply.raw.get("id") or "")
    if not review or "/" in review or any(ord(c) < 0x21 for c in review):
        raise DeliveryError(f"the post's review id {review!r} cannot be an App Store review id",
                            retryable=False)
    return review


def _plain(text: str) -> str:
    """Text compared as Apple may keep it: line endings and runs of spaces collapsed."""
    return " ".join(text.split())


@dataclass(frozen=True)
class _PostedReview:
    """What the writer knows of the collected review, to recognise it in App Store Connect."""

    nickname: str | None
    title: str | None
    body: str | None
    rating: int | None
    created: datetime | None
    territory: str | None

    @classmethod
    def of(cls, reply: Outgoing) -> _PostedReview:
        raw = reply.raw
        title, country = raw.get("title"), raw.get("country")
        body = _body(reply.post_text, title if isinstance(title, str) else "")
        return cls(
            nickname=_plain(reply.author) if reply.author and reply.author.strip() else None,
            title=_plain(title) if isinstance(title, str) else None,
            body=_plain(body) if body else None,
            rating=_stars(reply.post_rating),
            created=reply.post_created_at,
            territory=TERRITORIES.get(country.lower()) if isinstance(country, str) else None)

    def matches(self, attributes: dict[str, Any]) -> bool:
        """Whether a customerReviews resource's attributes are this review's."""
        def text(name: str) -> str:
            value = attributes.get(name)
            return _plain(value) if isinstance(value, str) else ""

        return ((self.nickname is None or text("reviewerNickname") == self.nickname)
                and (self.title is None or text("title") == self.title)
                and (self.body is None or text("body") == self.body)
                and (self.rating is None or attributes.get("rating") == self.rating)
                and (self.territory is None or attributes.get("territory") in
                     (None, self.territory))
                and not self.is_newer_than(attributes))

    def is_newer_than(self, attributes: dict[str, Any]) -> bool:
        """Whether the resource was written before this review can have been (a day's
        slack): newest first, nothing after it can be this review."""
        created = _when(attributes.get("createdDate"))
        return self.created is not None and created is not None and \
            created < self.created - OLDER_SLACK

    def describe(self) -> str:
        said = [f"{name} {value!r}" for name, value in (
            ("nickname", self.nickname), ("title", self.title), ("rating", self.rating))
            if value is not None]
        return ", ".join(said)


def _stars(value: Any) -> int | None:
    """A rating of 1 to 5 as kept in raw (4, 4.0, "4"); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        stars = float(value)
    except ValueError:
        return None
    return int(stars) if stars.is_integer() and 1 <= stars <= 5 else None


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time with its offset; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _body(text: str, title: str) -> str:
    """The review's body: the appstore source stores ``title`` and body as one text, the title
    on the first line (``listener/sources/appstore.py``)."""
    text = text.strip()
    if title and text.startswith(title):
        return text[len(title):].strip()
    return text


def _next(document: dict[str, Any]) -> str | None:
    """``links.next`` as a path and query against ``base_url`` (never another host)."""
    links = document.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    if not isinstance(following, str) or not following:
        return None
    parts = urlsplit(following)
    start = parts.path.find("/v1/")
    if start < 0:
        return None
    return parts.path[start:] + (f"?{parts.query}" if parts.query else "")


# The feed's two-letter storefronts (ISO 3166-1 alpha-2) as App Store Connect's territories
# (alpha-3; Kosovo, which ISO leaves out, is Apple's XKS). A country missing here is searched in
# every territory.
TERRITORIES = dict(pair.split(":") for pair in """
ae:ARE af:AFG ag:ATG ai:AIA al:ALB am:ARM ao:AGO ar:ARG at:AUT au:AUS az:AZE ba:BIH bb:BRB
bd:BGD be:BEL bf:BFA bg:BGR bh:BHR bj:BEN bm:BMU bn:BRN bo:BOL br:BRA bs:BHS bt:BTN bw:BWA
by:BLR bz:BLZ ca:CAN cd:COD cg:COG ch:CHE ci:CIV cl:CHL cm:CMR cn:CHN co:COL cr:CRI cv:CPV
cy:CYP cz:CZE de:DEU dk:DNK dm:DMA do:DOM dz:DZA ec:ECU ee:EST eg:EGY es:ESP fi:FIN fj:FJI
fm:FSM fr:FRA ga:GAB gb:GBR gd:GRD ge:GEO gh:GHA gm:GMB gr:GRC gt:GTM gw:GNB gy:GUY hk:HKG
hn:HND hr:HRV hu:HUN id:IDN ie:IRL il:ISR in:IND iq:IRQ is:ISL it:ITA jm:JAM jo:JOR jp:JPN
ke:KEN kg:KGZ kh:KHM kn:KNA kr:KOR kw:KWT ky:CYM kz:KAZ la:LAO lb:LBN lc:LCA li:LIE lk:LKA
lr:LBR lt:LTU lu:LUX lv:LVA ly:LBY ma:MAR mc:MCO md:MDA me:MNE mg:MDG mk:MKD ml:MLI mm:MMR
mn:MNG mo:MAC mr:MRT ms:MSR mt:MLT mu:MUS mv:MDV mw:MWI mx:MEX my:MYS mz:MOZ na:NAM ne:NER
ng:NGA ni:NIC nl:NLD no:NOR np:NPL nr:NRU nz:NZL om:OMN pa:PAN pe:PER pg:PNG ph:PHL pk:PAK
pl:POL pt:PRT pw:PLW py:PRY qa:QAT ro:ROU rs:SRB ru:RUS rw:RWA sa:SAU sb:SLB sc:SYC se:SWE
sg:SGP si:SVN sk:SVK sl:SLE sn:SEN sr:SUR st:STP sv:SLV sz:SWZ tc:TCA td:TCD th:THA tj:TJK
tm:TKM tn:TUN to:TON tr:TUR tt:TTO tw:TWN tz:TZA ua:UKR ug:UGA us:USA uy:URY uz:UZB vc:VCT
ve:VEN vg:VGB vn:VNM vu:VUT xk:XKS ye:YEM za:ZAF zm:ZMB zw:ZWE
""".split())


def _apple_error(response: httpx.Response) -> tuple[str, str]:
    """The first error's ``code`` and ``detail`` (else ``title``) of Apple's JSON:API errors."""
    errors = json_object(response).get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return "", response.text[:200].strip() if response.status_code >= 400 else ""
    detail = first.get("detail") or first.get("title") or ""
    return str(first.get("code") or ""), str(detail)[:300]


def _wait(response: httpx.Response) -> float:
    """Seconds to wait after a 429 (see the module's docstring)."""
    header = response.headers.get("Retry-After")
    if header is not None:
        return retry_after_seconds(header, DEFAULT_WAIT)
    match = _REMAINING.search(response.headers.get("X-Rate-Limit", ""))
    return SPENT_WAIT if match and int(match.group(1)) == 0 else DEFAULT_WAIT


def _es256(pem: str, account: str) -> Callable[[bytes], bytes]:
    """ECDSA P-256 with SHA-256, the signature as JWS wants it: r and s, 32 bytes each."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError as exc:
        raise MissingDependency("cryptography", "appstore") from exc
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError(f"reply account {account}: the private key cannot be read") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"reply account {account}: the private key is not a P-256 key "
                         "(App Store Connect's .p8)")
    ec_key = key

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(ec_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign
