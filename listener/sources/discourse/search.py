"""Brand queries in Discourse's search syntax, and search hits as the topics to read: the pure
parts of the search mode, kept apart so that its walk in the source module reads as paging."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.core.models import Rejected
from listener.core.query import Brand, to_simple_queries
from listener.sources.discourse.items import created_at

_FILTER_PREFIX = re.compile(r'(^|\s)(?:[@#]+)(?=[^\s"])')


def search_strings(brands: Iterable[Brand], categories: list[str]) -> dict[str, str | None]:
    """Each search string (one per OR-branch, plus the category filter) → its brand (None
    when several brands share it: the collect stage decides)."""
    owners: dict[str, list[str]] = {}
    scope = ""
    if categories:
        word = "category" if len(categories) == 1 else "categories"
        scope = f" {word}:{','.join(c.replace(' ', '-') for c in categories)}"
    for brand in brands:
        for simple in to_simple_queries(brand.query):
            query = _FILTER_PREFIX.sub(r"\1", simple) + scope
            owners.setdefault(query, []).append(brand.name)
    return {q: names[0] if len(set(names)) == 1 else None for q, names in owners.items()}


def search_terms(query: str, lower: int) -> tuple[str, str]:
    """The ``q`` sent for ``query`` over posts since ``lower`` (newest first, from the day
    before: ``after:`` takes a date), and that date."""
    after = (datetime.fromtimestamp(lower, tz=UTC) - timedelta(days=1)).date().isoformat()
    return f"{query} order:latest after:{after}", after


def hit_topics(hits: list[Any], lower: int, where: str) -> tuple[list[int], list[Rejected], bool]:
    """The topics of a search page's hits created since ``lower``, the hits that do not parse,
    and whether a hit older than ``lower`` was reached (hits come newest first)."""
    rejected: list[Rejected] = []
    todo: list[int] = []
    for index, hit in enumerate(hits):
        topic_id = hit.get("topic_id") if isinstance(hit, dict) else None
        try:
            if type(topic_id) is not int:
                raise ValueError("hit without a numeric topic_id")
            created = created_at(hit)
        except ValueError as exc:
            rejected.append(Rejected(f"{where} hit {index}", str(exc)))
            continue
        if created.timestamp() < lower:
            return todo, rejected, True  # hits come newest first: the rest are older
        todo.append(topic_id)
    return todo, rejected, False
