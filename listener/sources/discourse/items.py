"""A Discourse post record as a :class:`~listener.core.models.Post`: which records are skipped,
the text cleaned of others' words, the times, ids and URL. The pure parts of the source, kept
apart so that the source module reads as paging logic only."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import Post, parse_iso
from listener.sources.html_text import html_to_text

log = logging.getLogger("listener.sources.discourse")

PLATFORM = "discourse"
REGULAR = 1  # post_type: 2 moderator action, 3 small action, 4 whisper
_ASIDE = re.compile(r"<aside\b[^>]*\bclass=\"[^\"]*\b(?:quote|onebox)\b[^\"]*\"[^>]*>.*?</aside>",
                    re.IGNORECASE | re.DOTALL)
_RAW_KEYS = (
    "id", "topic_id", "post_number", "topic_slug", "topic_title", "category_id", "username",
    "name", "created_at", "updated_at", "reply_to_post_number", "post_type", "trust_level",
    "reads", "score", "like_count", "locale",
)


@dataclass(frozen=True)
class Topic:
    """What a post needs from its topic when the post itself does not say it."""

    id: int
    title: str = ""
    slug: str = ""
    category_id: int | None = None


@dataclass(frozen=True)
class Forum:
    """What turns one forum's records into posts: the source's name, the forum's address and
    the brand posts are tagged with when no search brand is."""

    source: str
    base_url: str
    brand: str | None = None

    @property
    def site(self) -> str:
        return self.base_url.split("://", 1)[1]

    def to_post(self, record: dict[str, Any], topic: Topic | None, created: datetime,
                brand: str | None = None) -> Post | None:
        """The record as a Post; None for what is not a customer's post (deleted, hidden,
        staff actions, whispers). Raises ValueError for a record that does not parse."""
        post_id = record["id"]
        skip = skip_reason(record)
        if skip:
            log.debug("source %s: discourse post %d skipped: %s", self.source, post_id, skip)
            return None
        topic_id = record.get("topic_id", topic.id if topic else None)
        number = record.get("post_number")
        if type(topic_id) is not int or type(number) is not int:
            raise ValueError("post without a numeric topic_id and post_number")
        author = record.get("username")
        if not isinstance(author, str) or not author:
            raise ValueError("post without a username")
        text = post_text(record, topic, number)
        if not text:
            log.debug("source %s: discourse post %d skipped: no text", self.source, post_id)
            return None
        slug = as_str(record.get("topic_slug")) or (topic.slug if topic else "") or "topic"
        return Post(
            platform=PLATFORM, platform_id=f"{self.site}/p/{post_id}", text=text,
            created_at=created, source=self.source,
            url=f"{self.base_url}/t/{slug}/{topic_id}/{number}", author=author,
            author_followers=None, brand=brand or self.brand, thread=str(topic_id),
            lang=language(record.get("locale")), raw=raw_fields(record, topic),
        )


def post_text(record: dict[str, Any], topic: Topic | None, number: int) -> str:
    """``cooked`` as plain text without quotes and link previews (``raw`` where it is empty),
    after the topic's title on a topic's first post. ValueError for a ``cooked`` not a string."""
    cooked = record.get("cooked")
    raw = record.get("raw")
    if cooked is not None and not isinstance(cooked, str):
        raise ValueError("'cooked' is not a string")
    body = html_to_text(_ASIDE.sub("", cooked or ""))
    if not body and isinstance(raw, str):
        body = raw.strip()
    title = ""
    if number == 1:  # a topic's first post: the title is part of what its author wrote
        title = " ".join(as_str(record.get("topic_title") or (topic.title if topic else ""))
                         .split())
    return "\n\n".join(part for part in (title, body) if part)


def raw_fields(record: dict[str, Any], topic: Topic | None) -> dict[str, Any]:
    """The record's fields worth keeping, with what the topic adds."""
    extra = {k: record[k] for k in _RAW_KEYS if record.get(k) is not None}
    if topic is not None:
        extra.setdefault("topic_title", topic.title)
        if topic.category_id is not None:
            extra.setdefault("category_id", topic.category_id)
    return extra


def language(locale: Any) -> str | None:
    """The language of a post's ``locale`` (``pt_BR`` → ``pt``); None where there is none."""
    return locale.replace("_", "-").split("-")[0].lower() \
        if isinstance(locale, str) and locale else None


def skip_reason(record: dict[str, Any]) -> str | None:
    """Why the record is not a customer's post, or None when it is one."""
    if record.get("deleted_at"):
        return "deleted"
    if record.get("user_deleted"):
        return "deleted by its author"
    if record.get("hidden"):
        return "hidden (flagged by the community)"
    post_type = record.get("post_type", REGULAR)
    if post_type != REGULAR:
        return f"post_type {post_type} (moderator action, small action or whisper)"
    return None


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def created_at(record: dict[str, Any]) -> datetime:
    """The record's ``created_at``; ValueError when it is missing or not an ISO 8601 time."""
    value = record.get("created_at")
    if not isinstance(value, str):
        raise ValueError("post without a created_at time")
    try:
        return parse_iso(value)
    except ValueError:
        raise ValueError(f"created_at {value[:40]!r} is not an ISO 8601 time") from None


def created_stamp(record: Any) -> int | None:
    """The record's ``created_at`` in epoch seconds; None when it has none that parses."""
    try:
        return int(created_at(record).timestamp()) if isinstance(record, dict) else None
    except ValueError:
        return None
