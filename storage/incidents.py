"""Incidents: many customers reporting the same problem about one brand within minutes.

The rules stage (:mod:`alerts.incidents`) decides which posts belong together; these verbs
keep what it decided. ``post_vectors`` holds the text vector of every recent post that would
have alerted a person (what new posts are compared with), ``incidents`` one row per incident
with the running sum of its members' vectors (its centroid, up to scale), ``incident_posts``
its members and when each was first announced to the destinations. Vectors are stored as
float16 (768 bytes for 384 dimensions); sums as float32.

Every writing verb joins the caller's transaction: the rules stage records a batch's vectors,
incidents, alerts and "evaluated" marks together, so a crash leaves all or none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from listener.core.models import parse_iso, to_iso
from storage.engine import Db
from storage.tx import immediate


@dataclass(frozen=True)
class VectorRow:
    """One recent post's text vector, for one of its brands."""

    post_id: int
    brand: str
    created_at: datetime
    author: str | None
    vector: np.ndarray  # unit length, float32


@dataclass
class IncidentRow:
    """An incident as stored; ``total`` is the sum of its members' unit vectors."""

    id: str
    brand: str
    opened_at: datetime
    first_at: datetime
    last_at: datetime
    reports: int
    customers: int
    total: np.ndarray

    @property
    def centroid(self) -> np.ndarray:
        norm = float(np.linalg.norm(self.total))
        return self.total / norm if norm else self.total


def encode(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def save_vectors(db: Db, rows: Iterable[VectorRow]) -> None:
    """Keep the vectors of recent posts that need a person (re-evaluation changes nothing)."""
    with immediate(db):
        db.conn.executemany(
            "INSERT INTO post_vectors (post_id, brand, created_at, author, vector)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(r.post_id, r.brand, to_iso(r.created_at), r.author, encode(r.vector))
             for r in rows],
        )


def loose_vectors(db: Db, brand: str, since: datetime, until: datetime) -> list[VectorRow]:
    """Vectors of the brand's posts in ``[since, until]`` that are in none of its incidents."""
    sql = (
        "SELECT v.post_id, v.created_at, v.author, v.vector FROM post_vectors v"
        " WHERE v.brand = ? AND v.created_at >= ? AND v.created_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM incident_posts m JOIN incidents i"
        " ON i.id = m.incident_id WHERE m.post_id = v.post_id AND i.brand = v.brand)"
        " ORDER BY v.created_at, v.post_id"
    )
    return [VectorRow(r[0], brand, parse_iso(r[1]), r[2], decode(r[3]))
            for r in db.execute(sql, [brand, to_iso(since), to_iso(until)]).fetchall()]


# the brand's posts in the triage queue (negative or help-seeking: they need a person), imports
# and backfills included, so a burst is measured against the brand's real history
_NEEDY = (
    "FROM triage t WHERE t.created_at >= ? AND t.created_at {upper} ? AND (coalesce(t.brand, '')"
    " = ? OR t.post_id IN (SELECT post_id FROM post_extra_brands WHERE brand = ?))"
)


def needy_count(db: Db, brand: str, since: datetime, until: datetime) -> int:
    """How many of the brand's posts that need a person were written in ``[since, until)``."""
    sql = "SELECT count(*) " + _NEEDY.format(upper="<")
    return int(db.execute(sql, [to_iso(since), to_iso(until), brand, brand]).fetchone()[0])


def needy_times(db: Db, brand: str, since: datetime, until: datetime) -> list[datetime]:
    """When the brand's posts that need a person were written in ``[since, until]``, in order."""
    sql = "SELECT t.created_at " + _NEEDY.format(upper="<=") + " ORDER BY t.created_at"
    return [parse_iso(r[0]) for r in db.execute(sql, [to_iso(since), to_iso(until), brand,
                                                      brand]).fetchall()]


_INCIDENT = ("SELECT id, brand, opened_at, first_at, last_at, reports, customers, centroid"
             " FROM incidents")


def _incident(r: tuple[Any, ...]) -> IncidentRow:
    return IncidentRow(r[0], r[1], parse_iso(r[2]), parse_iso(r[3]), parse_iso(r[4]), r[5], r[6],
                       np.frombuffer(r[7], dtype=np.float32).copy())


def open_incidents(db: Db, brand: str, since: datetime) -> list[IncidentRow]:
    """The brand's incidents with a report at or after ``since`` (still going on), oldest
    first (incidents opened in the same second by id, the same order on both engines)."""
    sql = f"{_INCIDENT} WHERE brand = ? AND last_at >= ? ORDER BY opened_at, id"  # noqa: S608
    return [_incident(r) for r in db.execute(sql, [brand, to_iso(since)]).fetchall()]


def load(db: Db, incident_id: str) -> IncidentRow | None:
    row = db.execute(f"{_INCIDENT} WHERE id = ?", [incident_id]).fetchone()  # noqa: S608
    return _incident(row) if row else None


def save_incident(db: Db, incident: IncidentRow, members: Sequence[VectorRow],
                  now: datetime) -> None:
    """Create or update an incident and add ``members`` (posts already in it are ignored);
    its counts are recomputed from its members, so a retried batch cannot inflate them.

    The earlier first and later last report are CASEs, not SQLite's scalar min/max (PostgreSQL's
    are aggregates only), with the stored row named by its table (unqualified, it is ambiguous
    with ``excluded`` on PostgreSQL)."""
    stamp = to_iso(now)
    with immediate(db):
        db.execute(
            "INSERT INTO incidents (id, brand, opened_at, first_at, last_at, reports, customers,"
            " centroid, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?) ON CONFLICT (id) DO"
            " UPDATE SET first_at = CASE WHEN excluded.first_at < incidents.first_at"
            " THEN excluded.first_at ELSE incidents.first_at END, last_at = CASE WHEN"
            " excluded.last_at > incidents.last_at THEN excluded.last_at ELSE incidents.last_at"
            " END, centroid = excluded.centroid, updated_at = excluded.updated_at",
            [incident.id, incident.brand, to_iso(incident.opened_at), to_iso(incident.first_at),
             to_iso(incident.last_at), np.asarray(incident.total, np.float32).tobytes(), stamp],
        )
        db.conn.executemany(
            "INSERT INTO incident_posts (incident_id, post_id, author, added_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(incident.id, m.post_id, m.author, stamp) for m in members])
        db.execute(
            "UPDATE incidents SET reports = (SELECT count(*) FROM incident_posts"
            " WHERE incident_id = ?1), customers = (SELECT count(DISTINCT"
            " coalesce(lower(author), 'post:' || post_id)) FROM incident_posts"
            " WHERE incident_id = ?1) WHERE id = ?1", [incident.id])
        row = db.execute("SELECT reports, customers FROM incidents WHERE id = ?",
                         [incident.id]).fetchone()
    incident.reports, incident.customers = int(row[0]), int(row[1])


def unannounced(db: Db, incident_id: str) -> list[int]:
    """Members no message has told the destinations about yet, oldest first."""
    sql = ("SELECT m.post_id FROM incident_posts m JOIN posts p ON p.id = m.post_id"
           " WHERE m.incident_id = ? AND m.announced IS NULL ORDER BY p.created_at, p.id")
    return [r[0] for r in db.execute(sql, [incident_id]).fetchall()]


def mark_announced(db: Db, incident_id: str, post_ids: Iterable[int], now: datetime) -> None:
    with immediate(db):
        db.conn.executemany(
            "UPDATE incident_posts SET announced = ? WHERE incident_id = ? AND post_id = ?",
            [(to_iso(now), incident_id, pid) for pid in post_ids])


def with_unannounced(db: Db) -> list[str]:
    """Incidents that have members no message announced yet (the partial index finds them,
    in id order: the order is written out so PostgreSQL keeps it too)."""
    sql = ("SELECT DISTINCT incident_id FROM incident_posts WHERE announced IS NULL"
           " ORDER BY incident_id")
    return [r[0] for r in db.execute(sql).fetchall()]


def members(db: Db, incident_id: str) -> list[dict[str, object]]:
    """Every member with what a message about the incident shows, oldest first."""
    sql = (
        "SELECT p.id, p.author, p.created_at, p.platform, s.urgency, s.p_negative,"
        " m.announced FROM incident_posts m JOIN posts p ON p.id = m.post_id"
        " LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
        " WHERE m.incident_id = ? ORDER BY p.created_at, p.id"
    )
    return [dict(r) for r in db.query(sql, [incident_id])]


def member_texts(db: Db, post_ids: Sequence[int]) -> list[str]:
    """The texts of the members ``post_ids`` (one bound value each: the caller caps how many),
    whose words an incident's top terms are counted on, in id order. None asked, none read:
    PostgreSQL refuses an empty ``IN ()``."""
    if not post_ids:
        return []
    marks = ",".join("?" * len(post_ids))
    sql = f"SELECT text FROM posts WHERE id IN ({marks}) ORDER BY id"  # noqa: S608 (marks only)
    return [r[0] for r in db.execute(sql, list(post_ids)).fetchall()]


def member_destinations(db: Db, incident_id: str) -> list[str]:
    """Where its members' own alerts would have gone: that is where the incident goes."""
    sql = ("SELECT DISTINCT a.destination FROM incident_posts m JOIN alerts a"
           " ON a.post_id = m.post_id WHERE m.incident_id = ? AND a.status NOT IN"
           " ('dry_run', 'held', 'digested') ORDER BY a.destination")
    return [r[0] for r in db.execute(sql, [incident_id]).fetchall()]
