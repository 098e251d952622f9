"""Replies on Bluesky: an ``app.bsky.feed.post`` record in the brand account's repository,
through the atproto client (the library the Bluesky source uses).

Log-in. The account's handle and an **app password** (never the account password), logged in at
``login_url`` (default https://bsky.social, the entryway that sends each account to its PDS)
once per writer with ``createSession``; the client refreshes the session by itself and every
session token is registered as a secret, like the password. ``createSession`` is limited per
account (about 30 per 5 minutes), so the writer keeps its session for its whole life.

What a reply is. The post's id is its ``at://`` URI. ``app.bsky.feed.getPosts`` of it gives its
CID and, when it is itself a reply, the root of its thread (``record.reply.root``): a reply
names both as strong refs (``reply.root`` and ``reply.parent``). A post the AppView no longer
returns was deleted (or is hidden from this account), and a post whose author limits who may
reply (``viewer.replyDisabled``, a threadgate) would take a reply that nobody sees: neither is
retried. Links and hashtags in the text become facets, found locally
(``atproto_client.utils.facet_detection``, no network). Bluesky notifies the parent's author of
the reply by itself, so no mention is added; ``@handle`` in the text stays plain text.

Exactly once: the record key. A post's record key is chosen by the writer, not the server: a
TID (the lexicon's key type for posts: 13 characters of base32-sortable, 53 bits of microseconds
then a 10-bit clock id) computed from the reply's id — its time part is the parent's time (its
own TID key when it has one, else its ``indexedAt``/``createdAt``) plus up to a second taken
from a hash of the reply id, its clock id from the same hash. So every attempt of one reply, in
any process, names the same record ``at://<our DID>/app.bsky.feed.post/<key>``; two replies to
one post differ (30 bits of the hash), and the key sorts just after the post it answers, as a
reply's would. :meth:`BlueskyWriter.find` is ``com.atproto.repo.getRecord`` of that key: there
(and replying to this post) means an earlier attempt got there. A second ``createRecord`` with
a key already taken is refused by the PDS — today with HTTP 500 (bluesky-social/atproto#3718; an
explicit error is on its way), so a refused create looks the key up before giving up: a record
found there is this reply, sent once.

Limits: 300 graphemes and 3000 UTF-8 bytes (the lexicon's ``maxGraphemes``/``maxLength``),
counted here with an approximation of grapheme clusters (combining marks, ZWJ sequences, skin
tones and flags count once); a longer text is refused before any request, never truncated.

Errors: 429 → :class:`RateLimited` (``Retry-After``, else ``ratelimit-reset``, a Unix time);
a refused log-in (401) → not retried (check handle and app password); 403 — an OAuth session
without ``repo:app.bsky.feed.post?action=create`` (``ScopeMissingError``), or a suspended account
— not retried; other 4xx (``InvalidRequest``: the record refused) not retried; an expired or
revoked session logs in afresh on the next attempt; 5xx and network failures are retried.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from alerts.replies.base import AccountConfig, Outgoing, Sent
from alerts.sinks._http import https_base_url
from alerts.sinks.base import error_for_status
from listener.core.errors import DeliveryError, MissingDependency, RateLimited
from listener.core.httpguard import httpx_options, sink_policy
from listener.core.log import redact, register_secret, register_short_lived_secret

POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
USER_AGENT = "social-listener/0.1 (replies)"
S32 = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, the TID alphabet
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_FALLBACK_TIME = datetime(2023, 1, 1, tzinfo=UTC)  # a parent without any readable time
_SPREAD_BITS = 20  # microseconds after the parent's time taken from the hash (about 1 s)
_NOT_AGAIN = ("InvalidRequest", "AccountTakedown", "AccountDeactivated", "RepoTakendown",
              "RepoDeactivated", "RepoSuspended", "InvalidSwap")


class BlueskyAccountConfig(AccountConfig):
    """A ``type: bluesky`` reply account: a handle and an app password."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo the password back

    type: Literal["bluesky"] = Field("bluesky", description="always 'bluesky'")
    handle: str = Field(min_length=3, description="the account's handle, e.g. brand.bsky.social")
    app_password: str = Field(
        min_length=1, repr=False,
        description='an app password of that account (Settings > Privacy and security > App '
        'passwords), given as {"$env": NAME}; never the account password',
    )
    login_url: str = Field(
        "https://bsky.social",
        description="where to log in (the entryway or the account's own PDS); replies then go "
        "to the account's PDS",
    )

    @field_validator("login_url")
    @classmethod
    def _login_url(cls, value: str) -> str:
        """The password travels to it: https only (http for 127.0.0.1/localhost tests)."""
        return https_base_url(value, "login_url")


# -- the record key ------------------------------------------------------------------------


def tid(micros: int, clock_id: int) -> str:
    """The TID of a time (microseconds since 1970) and a 10-bit clock id."""
    value = ((micros & ((1 << 53) - 1)) << 10) | (clock_id & 1023)
    return "".join(S32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def tid_micros(key: str) -> int | None:
    """The microseconds in a TID; None for a key that is not one."""
    if not _TID.match(key):
        return None
    value = 0
    for char in key:
        value = value * 32 + S32.index(char)
    return value >> 10


def _parent_micros(out: Outgoing) -> int:
    """The parent's time: its TID key, else its indexedAt or createdAt (what the source kept)."""
    found = tid_micros(out.platform_id.rsplit("/", 1)[-1])
    if found is not None:
        return found
    record = out.raw.get("record") if isinstance(out.raw.get("record"), dict) else {}
    for text in (out.raw.get("indexedAt"), (record or {}).get("createdAt")):
        try:
            when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            continue
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return int(when.timestamp() * 1_000_000)
    return int(_FALLBACK_TIME.timestamp() * 1_000_000)


def record_key(out: Outgoing) -> str:
    """This reply's record key: the same for every attempt, another for every reply."""
    digest = int.from_bytes(hashlib.sha256(out.reply_id.encode()).digest()[:8], "big")
    spread = digest & ((1 << _SPREAD_BITS) - 1)
    clock_id = (digest >> _SPREAD_BITS) & 1023
    return tid(_parent_micros(out) + 1 + spread, clock_id)


# -- length ----------------------------------------------------------------------------------


def graphemes(text: str) -> int:
    """Grapheme clusters, approximately (UAX #29 without its tables): a combining mark, a
    variation selector, a skin tone or a tag continues the cluster before it, a zero-width
    joiner glues the next character on, and regional indicators pair up into one flag."""
    count, glue, flag_open = 0, False, False
    for char in text:
        code = ord(char)
        if glue:
            glue = False
            continue
        if code == 0x200D:
            glue = True
            continue
        if (unicodedata.category(char) in ("Mn", "Mc", "Me") or 0xFE00 <= code <= 0xFE0F
                or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F):
            continue
        if 0x1F1E6 <= code <= 0x1F1FF:
            flag_open = not flag_open
            if not flag_open:
                continue
        else:
            flag_open = False
        count += 1
    return count


def length_problem(text: str) -> str | None:
    """Why Bluesky would refuse this text, or None."""
    if not text.strip():
        return "the reply is empty"
    count, size = graphemes(text), len(text.encode("utf-8"))
    if count > MAX_GRAPHEMES:
        return (f"the reply is {count} characters long; Bluesky takes at most {MAX_GRAPHEMES}: "
                "shorten it")
    if size > MAX_BYTES:
        return (f"the reply is {size} bytes long in UTF-8; Bluesky takes at most {MAX_BYTES}: "
                "shorten it")
    return None


# -- the writer ------------------------------------------------------------------------------


class BlueskyWriter:
    """Posts replies as one Bluesky account."""

    Config: ClassVar[type[AccountConfig]] = BlueskyAccountConfig
    type: ClassVar[str] = "bluesky"
    max_chars: ClassVar[int] = MAX_GRAPHEMES

    def __init__(self, config: BlueskyAccountConfig, timeout: float) -> None:
        try:
            import atproto  # type: ignore[import-untyped]
            from atproto import exceptions, models
            from atproto_client.utils import facet_detection  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingDependency("atproto", "bluesky") from exc
        self.config, self.name, self.timeout = config, config.name, timeout
        self._exc: Any = exceptions
        self._models: Any = models
        self._facets: Any = facet_detection
        register_secret(config.app_password)
        options = httpx_options(sink_policy(f"reply account {config.name}"))
        request = atproto.Request(timeout=timeout, **options)
        request.add_additional_header("User-Agent", USER_AGENT)
        self._client: Any = atproto.Client(base_url=config.login_url, request=request)
        self._client.on_session_change(self._session_changed)
        self._did: str | None = None
        self._handle = config.handle
        self._lock = threading.Lock()  # one session, one request at a time

    def __repr__(self) -> str:
        return f"BlueskyWriter(name={self.name!r}, handle={self.config.handle!r})"

    # -- the contract ------------------------------------------------------------------------

    def send(self, reply: Outgoing) -> Sent:
        problem = length_problem(reply.text)
        if problem is not None:
            raise DeliveryError(f"reply account {self.name}: {problem}", retryable=False)
        with self._lock:
            did = self._login()
            root, parent = self._reply_refs(reply)
            key = record_key(reply)
            models = self._models
            facets = self._facets.detect_facets(reply.text) or None
            record = models.AppBskyFeedPost.Record(
                text=reply.text, created_at=self._client.get_current_time_iso(), facets=facets,
                reply=models.AppBskyFeedPost.ReplyRef(root=root, parent=parent),
            )
            try:
                created = self._client.app.bsky.feed.post.create(did, record, rkey=key)
            except Exception as exc:
                error = self._error(exc, "create the reply")
                if _maybe_taken(exc):  # the key is taken: by this reply, sent before?
                    found = self._lookup(did, key, reply)
                    if found is not None:
                        return found
                raise error from None
            return Sent(str(created.uri), self._url(did, key))

    def find(self, reply: Outgoing) -> Sent | None:
        with self._lock:
            did = self._login()
            return self._lookup(did, record_key(reply), reply)

    def close(self) -> None:
        self._client.request.close()

    # -- requests ----------------------------------------------------------------------------

    def _session_changed(self, event: Any, session: Any) -> None:
        """Session tokens are credentials too; the DID names our repository."""
        register_short_lived_secret(session.access_jwt)  # replaced every couple of hours
        register_short_lived_secret(session.refresh_jwt)
        self._did = session.did
        self._handle = session.handle or self._handle

    def _login(self) -> str:
        if self._did is None:
            try:
                self._client.login(self.config.handle, self.config.app_password,
                                   fetch_bsky_profile=False)
            except Exception as exc:
                raise self._error(exc, "log in") from None
            if self._did is None:
                raise DeliveryError(f"reply account {self.name}: Bluesky log-in answered no "
                                    "session; check login_url", retryable=True)
        return self._did

    def _reply_refs(self, reply: Outgoing) -> tuple[Any, Any]:
        """The strong refs of the thread's root and of the post replied to."""
        if not reply.platform_id.startswith("at://") or f"/{POST}/" not in reply.platform_id:
            raise DeliveryError(f"reply account {self.name}: {reply.platform_id!r} is not a "
                                "Bluesky post URI", retryable=False)
        try:
            answer = self._client.get_posts([reply.platform_id])
        except Exception as exc:
            raise self._error(exc, "look up the post") from None
        view = next((p for p in answer.posts or [] if p.uri == reply.platform_id), None)
        if view is None:
            raise DeliveryError(f"reply account {self.name}: the post {reply.platform_id} is "
                                "gone from Bluesky (deleted, or hidden from this account); "
                                "nothing to reply to", status=404, retryable=False)
        if view.viewer is not None and view.viewer.reply_disabled:
            raise DeliveryError(f"reply account {self.name}: the author of "
                                f"{reply.platform_id} limits who may reply, and this account "
                                "may not", status=403, retryable=False)
        strong = self._models.ComAtprotoRepoStrongRef.Main
        parent = strong(uri=view.uri, cid=view.cid)
        above = getattr(view.record, "reply", None)
        root = strong(uri=above.root.uri, cid=above.root.cid) if above is not None else parent
        return root, parent

    def _lookup(self, did: str, key: str, reply: Outgoing) -> Sent | None:
        """The record at our key: this reply when it answers this post; None when absent."""
        try:
            found = self._client.app.bsky.feed.post.get(did, key)
        except Exception as exc:
            content = getattr(getattr(exc, "response", None), "content", None)
            if getattr(content, "error", None) == "RecordNotFound":
                return None
            raise self._error(exc, "look for an earlier attempt") from None
        answered = getattr(getattr(getattr(found.value, "reply", None), "parent", None), "uri",
                           None)
        if answered != reply.platform_id:
            raise DeliveryError(f"reply account {self.name}: the record key {key} holds "
                                f"another post ({found.uri}), not this reply", retryable=False)
        return Sent(str(found.uri), self._url(did, key))

    def _url(self, did: str, key: str) -> str:
        return f"https://bsky.app/profile/{self._handle or did}/post/{key}"

    def _error(self, exc: BaseException, action: str) -> DeliveryError | RateLimited:
        """atproto's (or httpx's) exception → ours, without the cause (it may hold a token)."""
        where = f"reply account {self.name}: Bluesky {action}"
        if isinstance(exc, DeliveryError | RateLimited):  # the guard refused, through atproto
            return exc
        response = getattr(exc, "response", None)
        if response is None:
            if isinstance(exc, self._exc.InvokeTimeoutError | httpx.TimeoutException):
                what = f"no answer within {self.timeout:g} s"
            else:
                cause = exc.__cause__ or exc
                what = f"could not reach Bluesky ({redact(type(cause).__name__)})"
            return DeliveryError(f"{where}: {what}; retried", retryable=True)
        status, content = int(response.status_code), response.content
        error = getattr(content, "error", None)
        message = getattr(content, "message", None)
        said = f"{error}: {message}" if error else redact(str(content)[:200])
        if status == 429:
            return RateLimited(f"{where}: rate-limited (HTTP 429 {said})",
                               _wait(response.headers))
        if error in ("ExpiredToken", "InvalidToken"):
            self._did = None  # log in afresh on the next attempt
            return DeliveryError(f"{where}: the session expired ({said}); logging in again",
                                 status=status, body_snippet=said, retryable=True)
        if action == "log in" and status in (400, 401):
            return DeliveryError(f"{where}: HTTP {status} {said}: check handle and app_password "
                                 "(an app password, not the account password)",
                                 status=status, body_snippet=said, retryable=False)
        if status == 401:
            self._did = None
            return DeliveryError(f"{where}: HTTP 401 {said}: the session was refused; check the "
                                 "app password (revoked?)", status=status, body_snippet=said,
                                 retryable=False)
        if status == 403:
            return DeliveryError(
                f"{where}: HTTP 403 {said}: this account may not create posts — an app "
                "password can; an OAuth session needs the permission "
                f"repo:{POST}?action=create; a suspended account cannot",
                status=status, body_snippet=said, retryable=False)
        if status == 400 and error in _NOT_AGAIN:
            return DeliveryError(f"{where}: HTTP 400 {said}", status=status, body_snippet=said,
                                 retryable=False)
        mapped = error_for_status(status, said)
        return DeliveryError(f"{where}: HTTP {status} {said}", status=status, body_snippet=said,
                             retryable=mapped.retryable)


def _maybe_taken(exc: BaseException) -> bool:
    """A refused create that may mean "this record key exists": today a 500, later an error
    of its own (a conflict, or a 400 whose name or message says the record exists)."""
    response = getattr(exc, "response", None)
    if response is None:
        return False
    content = response.content
    said = f"{getattr(content, 'error', '')} {getattr(content, 'message', '')}".lower()
    return response.status_code >= 500 or response.status_code == 409 or (
        response.status_code == 400 and "exist" in said)


def _wait(headers: dict[str, Any]) -> float:
    """Seconds to wait after a 429: ``Retry-After``, else until ``ratelimit-reset``."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        return max(0.0, float(lowered["retry-after"]))
    except (KeyError, ValueError):
        pass
    try:
        return max(1.0, float(lowered["ratelimit-reset"]) - time.time())
    except (KeyError, ValueError):
        return 60.0
