"""Paused sources: a source pauses itself (a rate limit, a monthly cap) until a time kept in
``source_state.paused_until``, across restarts and cron runs.

The collect stage pauses and resumes a source (:func:`pause_source`) and asks when it may poll
again (:func:`pause_end`, proof against a clock set back); people and probes (``/healthz``,
``/metrics``, ``listener status``, ``listener sources``) read one source (:func:`paused_until`)
or every paused source in one query (:func:`paused_sources`; ``source_state`` has one row per
configured source, so scanning it costs nothing).
"""

from __future__ import annotations

from datetime import datetime

from listener.core.models import parse_iso, to_iso
from storage.db import scrubbed
from storage.engine import Db
from storage.tx import immediate

PAUSED_SQL = "SELECT source, paused_until FROM source_state WHERE paused_until IS NOT NULL"


def paused_sources(db: Db) -> dict[str, str]:
    """Source name → the ISO time it resumes, for every source with a pause recorded (one whose
    time has passed included: the source clears it at its next poll)."""
    return {row[0]: row[1] for row in db.execute(PAUSED_SQL).fetchall()}


def paused_until(db: Db, source: str) -> datetime | None:
    row = db.execute("SELECT paused_until FROM source_state WHERE source = ?", [source]).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


def pause_end(db: Db, source: str, now: datetime) -> datetime | None:
    """When a paused source may poll again, proof against a clock that was set back.

    A pause is a wait that began when it was recorded (``updated_at``). If the clock now reads
    earlier than that, it was set back since (or ran ahead then): the wait is moved to start now
    (and saved), so a pause never lasts longer than the wait it was given.
    """
    row = db.execute("SELECT paused_until, updated_at FROM source_state WHERE source = ?",
                     [source]).fetchone()
    if not row or not row[0]:
        return None
    until = parse_iso(row[0])
    if not row[1] or now >= parse_iso(row[1]):
        return until
    until = now + (until - parse_iso(row[1]))
    with immediate(db):
        db.execute("UPDATE source_state SET paused_until = ?, updated_at = ?"
                   " WHERE source = ? AND updated_at = ?", [to_iso(until), to_iso(now), source,
                                                           row[1]])
    return until


def pause_source(db: Db, source: str, until: datetime | None, reason: str,
                 now: datetime) -> None:
    """Pause a source until ``until`` (None resumes it); kept across restarts and cron runs."""
    with immediate(db):
        db.execute(
            "INSERT INTO source_state (source, paused_until, reason, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET"
            " paused_until = excluded.paused_until, reason = excluded.reason,"
            " updated_at = excluded.updated_at",
            [source, to_iso(until) if until else None, scrubbed(reason) if until else None,
             to_iso(now)],
        )
