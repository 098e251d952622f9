"""What the Facebook and Instagram sources' tests read from a poll's pages (the same Graph
walk under both, listener/sources/meta/walk.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.models import Page

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def posts_of(pages: list[Page]) -> list[Any]:
    return [post for page in pages for post in page.posts]


def ids(pages: list[Page]) -> list[str]:
    return [post.platform_id for post in posts_of(pages)]


def saved(pages: list[Page]) -> Any:
    """The cursor the poll leaves stored: that of its last page that carries one."""
    return [p.cursor for p in pages if p.cursor is not None][-1]


def threads(pages: list[Page]) -> dict[str, Any]:
    return saved(pages)["threads"]
