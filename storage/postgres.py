"""The PostgreSQL engine: a psycopg 3 connection that runs the storage verbs' SQL.

Storage verbs are written once, against the small surface they share with sqlite-utils'
``Database`` (:class:`storage.engine.Db`): ``execute``, ``query`` (rows as dicts),
``conn.executemany`` and ``conn.in_transaction``. :class:`PgDatabase` offers the same surface on
a PostgreSQL connection, so a verb runs unchanged on either engine; where the dialects really
differ (date arithmetic, aggregation of strings, full-text search) a verb asks
:func:`storage.engine.dialect` and picks its statement.

The SQL keeps SQLite's ``?`` placeholders (and ``?N``, numbered): :func:`translate` turns them
into psycopg's ``%s`` once per statement (cached), outside string literals, and doubles every
literal ``%`` (psycopg reads ``%`` as a placeholder marker anywhere in a statement with
parameters). Statements are constants of the storage modules: values are always bound, never
formatted in.

Connections run in autocommit, as SQLite's do (``isolation_level=None``): the only transactions
are the ones :func:`storage.tx.immediate` opens. Why psycopg 3: the maintained driver, with
server-side binding, COPY and a pool; psycopg2 is in maintenance only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import dict_row
from psycopg.types.numeric import FloatLoader

from listener.core.errors import StorageError
from listener.core.log import redact, register_secret

DIALECT = "postgresql"
URL_SCHEMES = ("postgresql://", "postgres://")
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d*)|%")


def is_url(target: object) -> bool:
    """True when ``target`` names a PostgreSQL database (``postgresql://…``), not a file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """``sql`` with psycopg placeholders, and for ``?N`` the parameter index of each one.

    ``?`` become ``%s`` in order (None: parameters pass as they are); ``?1 … ?N`` become ``%s``
    with the indexes to pick from the parameters, so ``?1`` used twice binds its value twice.
    """
    order: list[int] = []
    numbered = plain = False

    def swap(match: re.Match[str]) -> str:
        nonlocal numbered, plain
        token = match.group(0)
        if token == "%":
            return "%%"
        if not token.startswith("?"):  # a quoted string or name: only its % are doubled
            return token.replace("%", "%%")
        if match.group(1):
            numbered = True
            order.append(int(match.group(1)) - 1)
        else:
            plain = True
        return "%s"

    out = _TOKEN.sub(swap, sql)
    if numbered and plain:
        raise StorageError("a statement mixes ? and ?N placeholders")
    return out, (tuple(order) if numbered else None)


def _bound(order: tuple[int, ...] | None, params: Sequence[Any] | None) -> Sequence[Any]:
    values = list(params or ())
    return values if order is None else [values[i] for i in order]


class PgConnection:
    """What storage verbs reach through ``db.conn``: execute, executemany, in_transaction."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        text, order = translate(sql)
        return self.raw.execute(text.encode(), _bound(order, params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        """Every row in one round of pipelined statements; ``rowcount`` is their total."""
        text, order = translate(sql)
        cur = self.raw.cursor()
        cur.executemany(text.encode(), [_bound(order, r) for r in rows])
        return cur

    def close(self) -> None:
        self.raw.close()


class PgDatabase:
    """A PostgreSQL database with the surface the storage verbs use (see the module doc)."""

    dialect = DIALECT

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.conn = PgConnection(raw)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        text, order = translate(sql)
        with self.conn.raw.cursor(row_factory=dict_row) as cur:
            cur.execute(text.encode(), _bound(order, params))
            yield from cur

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.raw.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]

    def close(self) -> None:
        self.conn.close()


def connect(url: str, busy_timeout_ms: int) -> PgDatabase:
    """Connect to ``url``; a lock waited on longer than the busy timeout fails the statement
    (as SQLite's busy timeout does) instead of hanging a stage. JIT compilation is off: every
    statement here is short, and a planner without statistics yet (a new or freshly copied
    table) prices a page's cross-post lookup past ``jit_above_cost`` and compiles it — half a
    second per page for a statement that runs in milliseconds (bench/ingest.py). Every plan is
    made for the values bound (``plan_cache_mode``): psycopg prepares a statement run five
    times, and PostgreSQL's generic plan for it then serves one status, brand or language as
    well as any other — the queue's count of a status nobody has ('assigned', 0 rows) walked a
    million index entries instead of finding none (239 ms instead of 0.1 ms on 10 M posts,
    bench/dashboard.py); planning for the values costs about a millisecond."""
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if password:
        register_secret(str(password))
    try:
        raw = psycopg.connect(url, autocommit=True,
                              options=f"-c lock_timeout={int(busy_timeout_ms)} -c jit=off"
                                      " -c plan_cache_mode=force_custom_plan")
    except psycopg.Error as exc:
        raise StorageError(f"cannot open database {redact(url)}: {redact(str(exc))}") from None
    # numeric (avg, sums of integers) as float, as SQLite hands them: no Decimal leaks out
    raw.adapters.register_loader("numeric", FloatLoader)
    return PgDatabase(raw)
