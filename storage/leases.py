"""Leases: who holds a piece of work, until when — how many workers share one database.

A lease is a row naming the work (``source:x-main``, ``stage:rules``, ``classify:<version>:42``,
``alert:<id>``), its owner (a worker id) and an expiry. Taking one is a single upsert that wins
only when nobody holds it or the holder's lease has expired, so two workers never hold the same
name; a worker that dies simply stops renewing, and the work is free again once the lease runs
out — nothing is lost and nothing needs cleaning up by hand. A worker releases what it finished.

Why rows and not PostgreSQL's advisory or row locks: a lease must outlive one transaction
(sending an alert takes seconds, and holding a transaction across it would hold the write lock
every worker shares), must be visible to ``listener status`` (who holds what, which are stale),
and must mean the same on SQLite, where one process holds them all.

On PostgreSQL a batch is taken (or given back) by one statement that decides each name by its
row alone (the upsert's condition, names in one order), so it takes the write lock shared
(:func:`storage.tx.immediate`): a classify worker claiming its next batch does not wait for
the score batches and pages in flight, nor they for it. Inside a caller's transaction (claiming
alert groups) it runs under that transaction's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from listener.core.models import to_iso
from storage.engine import POSTGRESQL, Db, dialect
from storage.tx import immediate

# a name nobody holds, or whose holder's lease expired, or that the owner holds already
_WON = (" ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until,"
        " taken_at = excluded.taken_at"
        " WHERE leases.until < excluded.taken_at OR leases.owner = excluded.owner")
_TAKE = "INSERT INTO leases (name, owner, until, taken_at) VALUES (?, ?, ?, ?)" + _WON  # noqa: S608
# PostgreSQL: the whole batch in one statement (one per name cost the classify stage ~30 µs a
# post in round trips and executor starts, as much as scoring's own writes), names in one
# order so two workers' batches lock alike; RETURNING says which were won
_TAKE_ALL_PG = ("INSERT INTO leases (name, owner, until, taken_at) SELECT name, ?, ?, ?"  # noqa: S608
                " FROM unnest(CAST(? AS text[])) AS name ORDER BY name" + _WON + " RETURNING name")
_RELEASE_ALL_PG = "DELETE FROM leases WHERE owner = ? AND name = ANY(CAST(? AS text[]))"


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    until: str
    taken_at: str


def take(db: Db, name: str, owner: str, now: datetime, seconds: float) -> bool:
    """Hold ``name`` for ``seconds`` (renewing it when ``owner`` holds it already); False when
    another worker holds it and its lease has not expired."""
    return bool(take_many(db, [name], owner, now, seconds))


def take_many(db: Db, names: Sequence[str], owner: str, now: datetime,
              seconds: float) -> list[str]:
    """The names of ``names`` that ``owner`` now holds, in the order given (one transaction:
    a batch of posts or alerts is claimed at once)."""
    if not names:
        return []
    stamp, until = to_iso(now), to_iso(now + timedelta(seconds=seconds))
    if dialect(db) == POSTGRESQL:
        unique = list(dict.fromkeys(names))  # a name twice would update its row twice: refused
        with immediate(db, shared=True):  # one statement, safe beside any other (docstring)
            won = {r[0] for r in db.execute(_TAKE_ALL_PG, [owner, until, stamp, unique])}
        return [name for name in names if name in won]
    with immediate(db):
        db.conn.executemany(_TAKE, [(name, owner, until, stamp) for name in names])
        held = {r["name"] for r in db.query(
            "SELECT name FROM leases WHERE owner = ? AND until = ? AND taken_at = ?",
            [owner, until, stamp])}
    return [name for name in names if name in held]


def release(db: Db, names: Sequence[str], owner: str) -> int:
    """Give back what ``owner`` holds of ``names`` (its work is done, or it stops)."""
    if not names:
        return 0
    if dialect(db) == POSTGRESQL:
        with immediate(db, shared=True):
            return max(int(db.execute(_RELEASE_ALL_PG, [owner, list(names)]).rowcount), 0)
    with immediate(db):
        cur = db.conn.executemany("DELETE FROM leases WHERE name = ? AND owner = ?",
                                  [(name, owner) for name in names])
    return max(int(cur.rowcount), 0)


def release_all(db: Db, owner: str) -> int:
    """Everything ``owner`` holds: a worker stopping cleanly frees its work at once."""
    with immediate(db):
        return int(db.execute("DELETE FROM leases WHERE owner = ?", [owner]).rowcount)


def held_elsewhere(db: Db, names: Sequence[str], owner: str, now: datetime) -> set[str]:
    """Which of ``names`` another worker holds right now (unexpired)."""
    if not names:
        return set()
    marks = ", ".join("?" * len(names))
    sql = (f"SELECT name FROM leases WHERE name IN ({marks})"  # noqa: S608 (placeholders)
           " AND owner != ? AND until >= ?")
    return {r["name"] for r in db.query(sql, [*names, owner, to_iso(now)])}


def listed(db: Db) -> list[Lease]:
    """Every lease, soonest to expire first: ``listener status`` shows them."""
    return [Lease(**r) for r in db.query(
        "SELECT name, owner, until, taken_at FROM leases ORDER BY until, name")]


def purge_expired(db: Db, before: datetime) -> int:
    """Delete leases that expired before ``before``: a free lease and no lease mean the same
    to :func:`take`, and a worker killed between recording its work and releasing the claim
    would otherwise leave the row (shown as stale) for ever."""
    with immediate(db):
        return int(db.execute("DELETE FROM leases WHERE until < ?",
                              [to_iso(before)]).rowcount)


def expired(db: Db, now: datetime) -> list[Lease]:
    """Leases past their expiry: work a dead (or stuck) worker left, free to be taken."""
    return [Lease(**r) for r in db.query(
        "SELECT name, owner, until, taken_at FROM leases WHERE until < ? ORDER BY until, name",
        [to_iso(now)])]
