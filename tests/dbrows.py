"""Reading tables back in tests, the same way on SQLite and PostgreSQL.

sqlite-utils' ``db["posts"].rows`` exists only for SQLite; tests that run on both engines
(the ``any_db`` fixture) read through these instead. Table and column names are the tests' own
constants, never input.
"""

from __future__ import annotations

from typing import Any


def rows(db: Any, table: str, order: str = "1") -> list[dict[str, Any]]:
    """Every row of ``table`` as dicts, ordered by ``order`` (default: the first column)."""
    return list(db.query(f"SELECT * FROM {table} ORDER BY {order}"))  # noqa: S608


def count(db: Any, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def get(db: Any, table: str, key: Any, column: str = "id") -> dict[str, Any]:
    """The row whose ``column`` is ``key``; KeyError when there is none."""
    found = list(db.query(f"SELECT * FROM {table} WHERE {column} = ?", [key]))  # noqa: S608
    if not found:
        raise KeyError(key)
    return found[0]
