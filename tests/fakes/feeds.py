"""A fake feed server for tests: RSS 2.0 and Atom documents over real HTTP on 127.0.0.1.

Tests give the real source (httpx + feedparser) ``fake.url(path)``; nothing of ours is mocked.
Each path serves one document (:meth:`FakeFeedServer.set_feed`) with the validators a web server
sends, and honours conditional GET as RFC 9110 describes it:

- ``ETag`` / ``Last-Modified`` are sent when set for the path;
- ``If-None-Match`` matching the ETag (weak comparison, a list, or ``*``) answers ``304``; when
  ``If-None-Match`` is present, ``If-Modified-Since`` is ignored;
- otherwise ``If-Modified-Since`` not older than ``Last-Modified`` answers ``304``.

Also: :meth:`FakeFeedServer.redirect` (a 301/302/307/308 to another path), :meth:`enqueue`
(a raw answer for a path, used once, before the document), unknown paths answer 404. Builders
write the documented shapes: :func:`rss_document` (RSS 2.0), :func:`atom_document` (Atom 1.0)
and :func:`google_alerts_document` (Atom as Google Alerts serves it, links wrapped in
``https://www.google.com/url?...&url=REAL``).
"""

from __future__ import annotations

import email.utils
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from tests.fakes.base import FakeHTTPServer, RecordedRequest, ScriptedResponse

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@dataclass
class _Document:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class FakeFeedServer(FakeHTTPServer):
    """Serves feed documents by path; use as a context manager."""

    name = "fake feed server"
    methods = ("GET",)
    content_type = "text/plain; charset=utf-8"

    def __init__(self) -> None:
        super().__init__()
        self._documents: dict[str, _Document] = {}
        self._redirects: dict[str, tuple[int, str]] = {}
        # Scripted answers are queued per path (FIFO each).
        self._script: defaultdict[str, deque[ScriptedResponse]] = defaultdict(deque)

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- scripting and inspection --------------------------------------------------------------

    def set_feed(self, path: str, body: str | bytes, *, content_type: str = RSS_TYPE,
                 etag: str | None = None, last_modified: datetime | None = None) -> None:
        """Serve this document at ``path`` (replacing any earlier one)."""
        stamp = email.utils.format_datetime(last_modified, usegmt=True) if last_modified else None
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._documents[path] = _Document(data, content_type, etag, stamp)

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        with self._lock:
            self._redirects[path] = (status, to)

    def enqueue(self, path: str, status: int = 200, body: str | bytes = "",
                headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """Answer the next request for ``path`` with exactly this (FIFO per path)."""
        with self._lock:
            self._script[path].append(ScriptedResponse(status, body, dict(headers or {}), delay))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The requests for ``path`` as documents are served: by full target (with the query)."""
        return [r for r in self.requests if r.target == path]

    # -- called from handler threads -----------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        path = request.target  # documents are served by full target
        with self._lock:
            self._record(request)
            if self._script[path]:
                return self._script[path].popleft()
            if path in self._redirects:
                status, target = self._redirects[path]
                return ScriptedResponse(status, "", {"Location": self.url(target)})
            document = self._documents.get(path)
        if document is None:
            return ScriptedResponse(404, "not found")
        validators = {"ETag": document.etag, "Last-Modified": document.last_modified}
        sent = {k: v for k, v in validators.items() if v}
        if _not_modified(document, headers):
            return ScriptedResponse(304, "", sent)
        return ScriptedResponse(200, document.body, {"Content-Type": document.content_type,
                                                     **sent})


def _not_modified(document: _Document, headers: dict[str, str]) -> bool:
    if "if-none-match" in headers:
        if document.etag is None:
            return False
        tags = [t.strip() for t in headers["if-none-match"].split(",")]
        mine = document.etag.removeprefix("W/")
        return "*" in tags or any(t.removeprefix("W/") == mine for t in tags)
    since, modified = headers.get("if-modified-since"), document.last_modified
    if since is None or modified is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(modified) <= email.utils.parsedate_to_datetime(
            since)
    except (TypeError, ValueError):
        return False  # an unparsable date is ignored, as the RFC says


# -- documents ---------------------------------------------------------------------------------


def rss_document(items: list[dict[str, Any]], *, title: str = "Acme reviews",
                 link: str = "https://reviews.example/", language: str = "en-us") -> str:
    """RSS 2.0. Item keys: title, link, description (HTML), guid, permalink (bool), published
    (datetime → pubDate), author (an email, as RSS wants) or creator (dc:creator)."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item['title'])}</title>" if "title" in item else "",
                  f"<link>{escape(item['link'])}</link>" if "link" in item else "",
                  f"<description>{escape(item['description'])}</description>"
                  if "description" in item else ""]
        if "guid" in item:
            permalink = "true" if item.get("permalink") else "false"
            fields.append(f'<guid isPermaLink="{permalink}">{escape(item["guid"])}</guid>')
        if "published" in item:
            pub = email.utils.format_datetime(item["published"].astimezone(UTC), usegmt=True)
            fields.append(f"<pubDate>{pub}</pubDate>")
        if "author" in item:
            fields.append(f"<author>{escape(item['author'])}</author>")
        if "creator" in item:
            fields.append(f"<dc:creator>{escape(item['creator'])}</dc:creator>")
        parts.append("<item>" + "".join(fields) + "</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(title)}</description><language>{language}</language>"
        + "".join(parts) + "</channel></rss>"
    )


def atom_document(entries: list[dict[str, Any]], *, feed_id: str = "urn:uuid:feed-1",
                  title: str = "Acme blog", updated: datetime | None = None) -> str:
    """Atom 1.0. Entry keys: id, title, title_type (text|html), link, published, updated
    (datetimes), summary / content (HTML), author (a name)."""
    parts = []
    for entry in entries:
        fields = [f"<id>{escape(entry['id'])}</id>" if "id" in entry else ""]
        if "title" in entry:
            kind = entry.get("title_type", "text")
            fields.append(f'<title type="{kind}">{escape(entry["title"])}</title>')
        if "link" in entry:
            fields.append(f'<link rel="alternate" href={quoteattr(entry["link"])}/>')
        for key in ("published", "updated"):
            if key in entry:
                fields.append(f"<{key}>{_rfc3339(entry[key])}</{key}>")
        for key in ("summary", "content"):
            if key in entry:
                fields.append(f'<{key} type="html">{escape(entry[key])}</{key}>')
        if "author" in entry:
            fields.append(f"<author><name>{escape(entry['author'])}</name></author>")
        parts.append("<entry>" + "".join(fields) + "</entry>")
    stamp = _rfc3339(updated or datetime(2024, 5, 1, tzinfo=UTC))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{escape(feed_id)}</id><title>{escape(title)}</title><updated>{stamp}</updated>"
        + "".join(parts) + "</feed>"
    )


def google_alerts_document(query: str, alerts: list[dict[str, Any]]) -> str:
    """Atom as Google Alerts serves it. Alert keys: id (digits), title (HTML, the matched words
    in <b>), url (the real article), published (datetime), content (HTML)."""
    entries = [{
        "id": f"tag:google.com,2013:googlealerts/feed:{alert['id']}",
        "title": alert["title"], "title_type": "html",
        "link": "https://www.google.com/url?" + urlencode(
            {"rct": "j", "sa": "t", "url": alert["url"], "ct": "ga", "cd": "CAIyGjU",
             "usg": "AOvVaw0abc"}),
        "published": alert["published"], "updated": alert["published"],
        "content": alert.get("content", ""), "author": "",
    } for alert in alerts]
    return atom_document(
        entries, title=f"Google Alert - {query}",
        feed_id="tag:google.com,2005:reader/user/00000000000000000000/state/com.google/alerts/1",
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
