"""What a database is to the storage verbs, whichever engine holds it.

SQLite (the embedded default, through sqlite-utils' ``Database``) and PostgreSQL
(:class:`storage.postgres.PgDatabase`) both offer this surface, so every verb is written once.
A verb whose SQL must differ between the two asks :func:`dialect`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Cursor(Protocol):
    """The part of a DB-API cursor the verbs read."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """``db.conn``: the raw connection, for batches and transaction state."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Db(Protocol):
    """A database as the storage verbs use it (sqlite-utils' ``Database`` is one)."""

    @property
    def conn(self) -> Any: ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def query(self, sql: str, params: Any = ..., /) -> Iterator[dict[str, Any]]: ...

    def table_names(self) -> list[str]: ...

    def close(self) -> None: ...


def dialect(db: object) -> str:
    """``"postgresql"`` or ``"sqlite"``: which SQL a verb must speak to ``db``."""
    return str(getattr(db, "dialect", SQLITE))


def pick(db: object, *, sqlite: str, postgresql: str) -> str:
    """The statement for ``db``'s engine, where the two dialects cannot share one (dates,
    full-text search, row addresses). Both are constants of the calling module."""
    return postgresql if dialect(db) == POSTGRESQL else sqlite


def database_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises, whichever engine: for the courtesy writes (progress
    marks, worker heartbeats, lease releases) that must never fail a stage."""
    import sqlite3

    from listener.core.errors import StorageError

    found: list[type[BaseException]] = [sqlite3.Error, StorageError]
    try:
        import psycopg
    except ImportError:  # PostgreSQL not installed: not configured either
        pass
    else:
        found.append(psycopg.Error)
    return tuple(found)
