"""RSS and Atom feeds (Google Alerts, blogs, review sites) through feedparser.

Feeds cannot be searched, so ``searches = False``: every new entry is imported, unless the
source lists ``brands:``, in which case the collect stage keeps only entries matching one of
their queries. A Google Alerts feed is already about one query, so it usually needs no
``brands:`` (set ``brand:`` to tag what it collects).

Each feed is fetched with a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
cursor; ``304`` means nothing new) and becomes its own page, so one broken feed never blocks the
others: a feed that fails (HTTP error, timeout, not a feed at all) is skipped, the others are
stored, and after the last feed the failures are raised together (``RateLimited`` with the
longest wait if any feed answered 429, else ``SourceError``); the failed feed's cursor does not
move. A malformed feed from which feedparser still reads entries is used, with a warning.

A malformed document that does not end with its root element's closing tag was cut off (a
server that died mid-write, a proxy's size limit), and its last entry may be cut mid-text:
stored so, it would stay title-only for ever, because a stored entry is never read again. So
that entry is *held back*: not stored, not added to ``seen``, and the response's ETag and
Last-Modified are not saved, so the next poll reads the document again. When a whole document
arrives, the entry is stored with its full text. A feed that is served cut every time still
delivers it: after ``CUT_READS`` consecutive reads ending in the same entry, it is taken as read.
Every other entry of a cut document ended before the cut and is used at once. Storage stays
append-only; nothing is rewritten.

Every request and every redirect hop goes through :mod:`listener.core.httpguard`: a redirect to
a private, loopback or link-local address is refused (``allow_private: true`` for intranet
feeds; a feed URL written as an IP address or localhost is always allowed), and a document over
``max_bytes`` fails that feed's poll without being read whole.

Feed URLs may carry private tokens, so they are never written to the database: cursor keys are
digests of the URL, and messages and ``Post.raw`` show it without query string or user info.

Cursor (JSON; every page carries all of it)::

    {"version": 1,
     "feeds": {"sha256:1f2e3d4c5b6a7988": {"etag": "\\"abc\\"" or null,
                                          "modified": "Wed, 01 May 2024 10:00:00 GMT" or null,
                                          "seen": ["entry id", ...],    # at most 1,000
                                          "held": {"id": "entry id", "reads": 1}}}}  # optional
"""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from pydantic import Field, field_validator

from listener.core.errors import ListenerError, MissingDependency, RateLimited, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.core.models import Page, Post, Rejected
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import CursorLayout, SeenIds
from listener.sources.html_text import html_to_text
from listener.sources.http import USER_AGENT, raise_for_status

try:  # both checked in the constructor, so `listener sources` can say what to install
    import feedparser
except ImportError:
    feedparser = None
try:
    import httpx
except ImportError:
    httpx = None

log = logging.getLogger(__name__)

PLATFORM = "rss"
MAX_REDIRECTS = 5
CUT_READS = 3  # reads of a cut document ending in the same entry before it is taken as read
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"
)
_GOOGLE_HOST = re.compile(r"^(www\.)?google\.[a-z]{2,3}(\.[a-z]{2})?$")
_CURSOR = CursorLayout(
    version=1, section="feeds", log=log,
    not_understood="source %s: cursor not understood; reading every feed afresh",
    bad_entry="source %s: bad cursor entry for feed %s; reading it afresh",
)


class RssSourceConfig(SourceConfig, GuardSettings):
    """Keys of a ``type: rss`` source."""

    feeds: list[str] = Field(
        min_length=1, description="feed URLs (RSS or Atom, e.g. Google Alerts 'deliver to RSS' "
        "feeds); a URL with a private token can be written as {\"$env\": NAME}",
    )
    max_entries: int = Field(
        200, ge=1, description="new entries taken per feed per poll; the rest come next poll"
    )

    @field_validator("feeds")
    @classmethod
    def _http_urls(cls, feeds: list[str]) -> list[str]:
        for index, url in enumerate(feeds):
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"feed {index} is not an http(s) URL")
        if len(set(feeds)) != len(feeds):
            raise ValueError("a feed is listed twice")
        return [url.strip() for url in feeds]


@dataclass(frozen=True)
class _Held:
    """The last entry of a cut document, held back, and how many reads in a row ended in it."""

    id: str
    reads: int

    @classmethod
    def from_json(cls, data: Any) -> _Held | None:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return None
        reads = data.get("reads")
        return cls(data["id"], reads) if type(reads) is int and reads >= 1 else None


@dataclass
class _FeedState:
    etag: str | None = None
    modified: str | None = None
    seen: SeenIds = field(default_factory=SeenIds)
    held: _Held | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"etag": self.etag, "modified": self.modified,
                                "seen": self.seen.to_json()}
        if self.held is not None:
            data["held"] = {"id": self.held.id, "reads": self.held.reads}
        return data

    @classmethod
    def from_json(cls, data: Any) -> _FeedState | None:
        if not isinstance(data, dict):
            return None
        etag, modified = data.get("etag"), data.get("modified")
        seen = SeenIds.from_loose_json(data.get("seen"))
        if seen is None or not all(v is None or isinstance(v, str) for v in (etag, modified)):
            return None
        return cls(etag, modified, seen, _Held.from_json(data.get("held")))


def feed_key(url: str) -> str:
    """The cursor key of a feed: a digest, so a URL's secret never reaches the database."""
    return "sha256:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def display_url(url: str) -> str:
    """The URL as shown in messages and ``Post.raw``: no user info, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def unwrap_google_redirect(link: str) -> str:
    """The real article behind a Google Alerts link (``https://www.google.com/url?...&url=X``)."""
    parts = urlsplit(link)
    if parts.path != "/url" or not _GOOGLE_HOST.match(parts.hostname or ""):
        return link
    params = parse_qs(parts.query)
    for name in ("url", "q"):
        for target in params.get(name, []):
            if urlsplit(target).scheme in ("http", "https"):
                return target
    return link


class RssSource:
    """New entries of RSS/Atom feeds, one page per feed."""

    type: ClassVar[str] = "rss"
    searches: ClassVar[bool] = False  # imports everything; filters only when `brands` is set
    Config: ClassVar[type[SourceConfig]] = RssSourceConfig

    def __init__(self, config: RssSourceConfig, ctx: SourceContext) -> None:
        for module, package in ((feedparser, "feedparser"), (httpx, "httpx")):
            if module is None:
                raise MissingDependency(package, "rss")
        self.config = config
        self.ctx = ctx
        self.name = config.name
        self._client = guarded_client(
            source_policy(config.name, config, config.feeds),
            timeout=ctx.http_timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        )

    def close(self) -> None:
        self._client.close()

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """A page per feed with something new; failed feeds are raised together at the end."""
        states = self._load_cursor(cursor)
        failures: list[tuple[str, ListenerError]] = []
        for url in self.config.feeds:
            try:
                page = self._poll(url, states)
            except (SourceError, RateLimited) as exc:
                log.warning("source %s: feed %s failed: %s", self.name, display_url(url), exc)
                failures.append((url, exc))
                continue
            if page is not None:
                yield page
        if failures:
            raise self._combined(failures)

    # -- cursor ---------------------------------------------------------------------------------

    def _load_cursor(self, cursor: Any) -> dict[str, _FeedState]:
        # feeds no longer configured are forgotten
        named = {feed_key(url): display_url(url) for url in self.config.feeds}
        return _CURSOR.load(cursor, self.name, _FeedState.from_json, named)

    @staticmethod
    def _dump(states: dict[str, _FeedState]) -> dict[str, Any]:
        return _CURSOR.dump({k: s.to_json() for k, s in states.items()})

    def _combined(self, failures: list[tuple[str, ListenerError]]) -> ListenerError:
        what = "; ".join(f"{display_url(url)}: {exc}" for url, exc in failures)
        waits = [exc.retry_after for _, exc in failures if isinstance(exc, RateLimited)]
        message = f"source {self.name}: {len(failures)} of {len(self.config.feeds)} feed(s) " \
                  f"failed, the others were collected: {what}"
        if waits:
            return RateLimited(message, max((w for w in waits if w is not None), default=None))
        return SourceError(message)

    # -- one feed -------------------------------------------------------------------------------

    def _poll(self, url: str, states: dict[str, _FeedState]) -> Page | None:
        """The feed's new entries as a page, or None when the server says nothing changed."""
        key = feed_key(url)
        state = states.get(key) or _FeedState()
        request_headers = {}
        if state.etag:
            request_headers["If-None-Match"] = state.etag
        if state.modified:
            request_headers["If-Modified-Since"] = state.modified
        response, content = self._download(url, request_headers)
        if response.status_code == 304:
            log.debug("source %s: feed %s not modified", self.name, display_url(url))
            return None
        parsed = self._parse(url, response, content)
        held = self._held(url, parsed, content, state)
        posts, rejected, taken, complete = self._entries(
            url, parsed, state.seen, held.id if held else None)
        complete = complete and held is None  # read the document again next poll
        states[key] = _FeedState(
            etag=response.headers.get("etag") if complete else state.etag,
            modified=response.headers.get("last-modified") if complete else state.modified,
            seen=state.seen.merged(taken),
            held=held,
        )
        return Page(posts, self._dump(states), rejected)

    def _held(self, url: str, parsed: Any, content: bytes, state: _FeedState) -> _Held | None:
        """The entry to hold back from this read (see the module docstring), or None.

        Only the last entry of a malformed document that was visibly cut, only while it is new,
        and only until ``CUT_READS`` reads in a row have ended in it.
        """
        if not parsed.entries or not parsed.get("bozo") or _ends_whole(content):
            return None
        last = _entry_id(parsed.entries[-1])
        if last is None or last in state.seen:
            return None
        reads = state.held.reads + 1 if state.held and state.held.id == last else 1
        shown = display_url(url)
        if reads >= CUT_READS:
            log.warning("source %s: feed %s was cut off %d reads in a row, each time in entry "
                        "%r; taking that entry as read", self.name, shown, reads, last)
            return None
        log.info("source %s: feed %s was cut off; its last entry %r is held back until a whole "
                 "document is read (read %d of %d)", self.name, shown, last, reads, CUT_READS)
        return _Held(last, reads)

    def _download(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        shown = display_url(url)
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code != 304 and not 200 <= response.status_code < 300:
                    body = response.read()[:2000].decode("utf-8", "replace")
                    raise_for_status(self.name, response.status_code, response.headers, body,
                                     self.ctx.clock())
                content = response.read()  # the guard's transport caps it at max_bytes
        except httpx.TimeoutException as exc:
            raise SourceError(f"feed {shown} did not answer within {self.ctx.http_timeout:g}s "
                              f"({type(exc).__name__}); the next poll retries") from exc
        except httpx.TooManyRedirects as exc:
            raise SourceError(f"feed {shown} redirects more than {MAX_REDIRECTS} times; "
                              "configure the final URL") from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot fetch feed {shown}: {type(exc).__name__}: "
                              f"{str(exc).replace(url, shown)}") from exc
        if any(r.status_code in (301, 308) for r in response.history):
            log.info("source %s: feed %s moved permanently to %s; update the config",
                     self.name, shown, display_url(str(response.url)))
        return response, content

    def _parse(self, url: str, response: httpx.Response, content: bytes) -> Any:
        """feedparser's reading of the document; a document with no readable entry that is
        malformed or not a feed at all raises."""
        headers = {k.lower(): v for k, v in response.headers.items()}
        headers.setdefault("content-location", str(response.url))
        # a stream, never bytes or str: feedparser would take those for a URL or a local path
        parsed = feedparser.parse(io.BytesIO(content), response_headers=headers)
        shown = display_url(url)
        if parsed.entries and parsed.get("bozo"):
            log.warning("source %s: feed %s is malformed (%s); using the %d entries read",
                        self.name, shown, parsed.get("bozo_exception"), len(parsed.entries))
        elif not parsed.entries and (parsed.get("bozo") or not parsed.get("version")):
            why = parsed.get("bozo_exception") or "no RSS or Atom document"
            raise SourceError(f"feed {shown} could not be read as RSS or Atom: {why}")
        return parsed

    def _entries(
        self, url: str, parsed: Any, seen: Container[str], held: str | None = None
    ) -> tuple[list[Post], list[Rejected], list[str], bool]:
        """New entries in document order, at most ``max_entries``: posts, rejects, the ids
        handled (for ``seen``), and whether every new entry was taken. ``held``: an entry id
        left for a later read (neither taken nor handled)."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        handled: list[str] = []
        language = _language(dict.get(parsed.feed, "language"))
        for index, entry in enumerate(parsed.entries):
            entry_id = _entry_id(entry)
            where = f"{display_url(url)} entry {index}"
            if entry_id is None:
                rejected.append(Rejected(where, "entry has no id, link, title or summary"))
                continue
            if entry_id in seen or entry_id in handled:
                handled.append(entry_id)
                continue
            if entry_id == held:
                continue
            if len(posts) + len(rejected) >= self.config.max_entries:
                log.info("source %s: feed %s has more than %d new entries; the rest next poll",
                         self.name, display_url(url), self.config.max_entries)
                return posts, rejected, handled, False
            handled.append(entry_id)  # a rejected entry is not reported again every poll
            try:
                posts.append(self._to_post(url, entry, entry_id, language))
            except ValueError as exc:
                rejected.append(Rejected(f"{where} ({entry_id})", str(exc)))
        return posts, rejected, handled, True

    def _to_post(self, url: str, entry: Any, entry_id: str, language: str | None) -> Post:
        """The entry as a Post; ValueError says why it cannot be one."""
        title = " ".join(html_to_text(dict.get(entry, "title")).split())
        body = html_to_text(_summary(entry))
        text = title if not body or body == title else f"{title}\n\n{body}" if title else body
        if not text:
            raise ValueError("entry has neither a title nor a summary")
        raw_link = dict.get(entry, "link") or None
        link = unwrap_google_redirect(raw_link) if raw_link else None
        if link and urlsplit(link).scheme not in ("http", "https"):
            link = None
        author = (dict.get(entry, "author") or "").strip() or None
        raw = {
            "feed": display_url(url), "id": dict.get(entry, "id"), "link": link,
            "title": title or None, "published": dict.get(entry, "published"),
            "updated": dict.get(entry, "updated"), "author": author,
            "tags": [t.get("term") for t in dict.get(entry, "tags") or [] if t.get("term")],
        }
        if raw_link != link:
            raw["original_link"] = raw_link
        return Post(
            platform=PLATFORM, platform_id=entry_id, text=text,
            created_at=self._created_at(entry), source=self.name, url=link, author=author,
            lang=_entry_language(entry) or language, brand=self.config.brand,
            raw={k: v for k, v in raw.items() if v not in (None, [])},
        )

    def _created_at(self, entry: Any) -> datetime:
        """published, else updated, else now; feedparser's parsed dates are UTC."""
        for key in ("published_parsed", "updated_parsed"):
            value = dict.get(entry, key)  # plain dict access: no feedparser fallback warnings
            if value:
                try:
                    return datetime.fromtimestamp(calendar.timegm(value), UTC)
                except (OverflowError, ValueError, OSError):
                    continue
        return self.ctx.clock()


def _entry_id(entry: Any) -> str | None:
    """A stable id: the entry's id/guid, else its link, else a digest of title + date."""
    for key in ("id", "link"):
        value = dict.get(entry, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    title, published = dict.get(entry, "title") or "", dict.get(entry, "published") or ""
    basis = f"{title}\n{published}" if title else _summary(entry)
    if not basis.strip():
        return None
    return "sha1:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()


_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)[\s/>]")


def _ends_whole(content: bytes) -> bool:
    """Whether the document ends with its root element's closing tag (then nothing was cut
    off at its end, whatever else is malformed in it). A document in an encoding that is not
    ASCII-compatible never matches: its last entry is then held like a cut one."""
    match = _ROOT.search(content)  # the first element (the XML declaration is <?, not <name)
    tail = content[-65536:].rstrip()  # no copy of a 10 MB document for five bytes
    return match is not None and tail.endswith(b"</" + match.group(1) + b">")


def _summary(entry: Any) -> str:
    summary = dict.get(entry, "summary")
    if summary:
        return str(summary)
    contents = dict.get(entry, "content") or []
    return str(contents[0].get("value") or "") if contents else ""


def _entry_language(entry: Any) -> str | None:
    for key in ("summary_detail", "title_detail"):
        detail = dict.get(entry, key)
        if detail and detail.get("language"):
            return _language(detail["language"])
    return None


def _language(tag: Any) -> str | None:
    """The primary subtag (``en-US`` → ``en``), as brands' ``languages`` are written."""
    if not isinstance(tag, str) or not tag.strip():
        return None
    return tag.strip().split("-")[0].split("_")[0].lower()
