"""What every source's persisted cursor is made of: a versioned map of entries, and seen ids.

A source saves its cursor with each page, so a restart goes on exactly where the last stored
page ended: no gaps, no duplicates. Almost every source lays it out the same way::

    {"version": 1, "<section>": {"<key>": <entry>, ...}}

one entry per feed, query, stream or file, and reads it back the same way: no cursor yet means
an empty map; a cursor that is not this layout (another version, another source's, hand-edited)
is logged and read as empty, so everything starts afresh; an entry that does not parse is logged
and only that key starts afresh. Nothing here ever raises on a stored value: a bad cursor must not
stop a source from polling. :class:`CursorLayout` is that reading and writing, once. (X keeps two
such maps side by side and reads them in :mod:`listener.sources.x.cursor`.)

Many entries keep the ids of recently collected items, newest first, so that items searched again
(an overlap window, a listing that moved) are recognised and skipped. :class:`SeenIds` is that
list: bounded, ordered, with a fast membership test, saved as a plain JSON list of strings.

Only the plumbing is here. What an entry holds, and how it is checked, stays with each source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

MAX_SEEN = 1000
"""Ids remembered per entry by the sources whose windows hold the most items (Hacker News, RSS)."""

T = TypeVar("T")


class SeenIds:
    """Ids already collected, newest first: saved with the cursor to skip items seen again.

    Held as stored: loading neither reorders nor deduplicates, so a saved cursor is written back
    exactly as it was read. :meth:`merged` is what adds newer ids, removes repeats and bounds it.
    Immutable, so the same value can sit in an old and a new cursor entry.
    """

    __slots__ = ("_ids", "_lookup")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = tuple(ids)
        self._lookup = frozenset(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeenIds) and self._ids == other._ids

    def __hash__(self) -> int:
        return hash(self._ids)

    def __repr__(self) -> str:
        return f"SeenIds({list(self._ids)!r})"

    def merged(self, newer: Iterable[str], limit: int = MAX_SEEN) -> SeenIds:
        """``newer`` (newest first) in front of these ids, each id once, the newest ``limit``."""
        return SeenIds(list(dict.fromkeys([*newer, *self._ids]))[:limit])

    def to_json(self) -> list[str]:
        return list(self._ids)

    @classmethod
    def from_json(cls, value: Any) -> SeenIds | None:
        """The ids saved by :meth:`to_json`; None unless ``value`` is a list of strings."""
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return None
        return cls(value)

    @classmethod
    def from_loose_json(cls, value: Any, limit: int = MAX_SEEN) -> SeenIds | None:
        """The first ``limit`` ids of any list, each read as a string; None unless a list.

        The forgiving reading the Hacker News and RSS cursors always had (an id saved as a
        number still counts), kept so that no cursor they accepted is refused now.
        """
        if not isinstance(value, list):
            return None
        return cls([str(item) for item in value][:limit])


@dataclass(frozen=True)
class CursorLayout:
    """One source's ``{"version": …, "<section>": {key: entry}}`` cursor, read and written.

    The warnings are each source's own (they name what starts afresh), logged to its logger, so
    its log reads as it always has.
    """

    version: int
    section: str
    log: logging.Logger
    not_understood: str
    """Warning for a cursor that is not this layout; ``%``-style, argument: the source's name."""
    bad_entry: str
    """Warning for one entry that does not parse; arguments: the source's name, the entry's."""

    def entries(self, cursor: Any, source: str) -> dict[str, Any]:
        """The stored entries, unchecked; empty with no cursor, or (logged) a foreign one."""
        if cursor is None:
            return {}
        section = cursor.get(self.section) if isinstance(cursor, dict) else None
        if not isinstance(section, dict) or cursor.get("version") != self.version:
            self.log.warning(self.not_understood, source)
            return {}
        return section

    def load(
        self, cursor: Any, source: str, parse: Callable[[Any], T | None],
        keys: Mapping[str, str] | None = None,
    ) -> dict[str, T]:
        """Each stored entry that ``parse`` reads (None: not one; logged, that key is dropped).

        ``keys``: read only these (key → how the warning names it), in this order, the way a
        source reads the entries of what is configured now; None: every stored entry, in stored
        order, named by its key.
        """
        stored = self.entries(cursor, source)
        wanted = {key: key for key in stored} if keys is None else keys
        loaded: dict[str, T] = {}
        for key, name in wanted.items():
            if key not in stored:
                continue
            value = parse(stored[key])
            if value is None:
                self.log.warning(self.bad_entry, source, name)
            else:
                loaded[key] = value
        return loaded

    def dump(self, entries: dict[str, Any]) -> dict[str, Any]:
        """The cursor to save: ``entries`` (already JSON) under this layout's version."""
        return {"version": self.version, self.section: entries}
