"""Reports: alerts about many posts at once (spikes, digests, alerts held over quiet hours).

A report is written once with the alerts that deliver it, in one transaction, so a crash either
leaves both or neither. Its id is deterministic (kind, name, brand, source, window), so a stage
that runs again for the same window adds nothing; its alerts go through the ordinary outbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import Post, Report, ReportMessage, Score, parse_iso, to_iso
from storage import outbox
from storage.db import SCORE_COLUMNS, post_from_row, score_from_row, scrubbed
from storage.engine import Db, pick
from storage.tx import immediate


def report_alert_id(report: Report, destination: str) -> str:
    """The outbox id of ``report``'s alert to ``destination``."""
    return outbox.alert_id(report.name, f"report:{report.id}", destination)


def enqueue_report(
    db: Db, report: Report, destinations: Iterable[str], now: datetime,
    status: str = outbox.PENDING,
) -> int:
    """Store the report and one alert per destination; returns alerts added (0 if seen before)."""
    stamp = to_iso(now)
    payload = _scrubbed({"summary": report.summary, "facts": [list(f) for f in report.facts],
                         "terms": list(report.terms), "examples": list(report.example_post_ids),
                         "numbers": report.numbers, "parent": report.parent_id})
    rank = outbox.REPORT_RANK.get(report.priority, 1.0)
    rows = [
        (report_alert_id(report, dest), report.id, report.name, dest, status, report.priority,
         rank, stamp, stamp)
        for dest in destinations
    ]
    with immediate(db):
        db.execute(
            "INSERT INTO reports (id, kind, name, brand, source, window_start, window_end, title,"
            " payload, chart_png, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO NOTHING",
            [report.id, report.kind, report.name, report.brand, report.source,
             to_iso(report.window_start), to_iso(report.window_end), scrubbed(report.title, None),
             json.dumps(payload, ensure_ascii=False, default=str), report.chart_png, stamp],
        )
        cur = db.conn.executemany(
            "INSERT INTO alerts (id, report_id, rule, destination, status, priority, rank,"
            " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
            rows,
        )
    return max(int(cur.rowcount), 0)


def _scrubbed(value: Any) -> Any:
    """The payload with every string scrubbed as error text is (:func:`storage.db.scrubbed`):
    a summary or fact may quote an error or a post that quotes a secret, and the payload is
    what sinks, the dashboard and backups show."""
    if isinstance(value, str):
        return scrubbed(value, None)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def last_report_at(db: Db, kind: str, name: str, brand: str | None,
                   source: str | None) -> datetime | None:
    """End of the newest window reported for this (kind, name, brand, source): cooldowns."""
    row = db.execute(
        "SELECT max(window_end) FROM reports WHERE kind = ? AND name = ?"
        " AND coalesce(brand, '') = ? AND coalesce(source, '') = ?",
        [kind, name, brand or "", source or ""],
    ).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


@dataclass(frozen=True)
class SpikeWindow:
    """An earlier spike report: the end of its window and the kinds of spike it reported."""

    window_end: datetime
    spikes: tuple[str, ...]  # its ``numbers.spikes``: the kinds whose cooldown it started


def spike_windows(db: Db, name: str, brand: str | None, source: str | None,
                  since: datetime) -> list[SpikeWindow]:
    """Spike reports of detector ``name`` for (``brand``, ``source``) whose window ends at or
    after ``since``: what the detector's cooldowns are measured from.

    ``created_at`` ≥ ``window_end``, so the same bound on ``created_at`` keeps the range to the
    ``reports(kind, created_at)`` index.
    """
    stamp = to_iso(since)
    rows = db.execute(
        "SELECT window_end, payload FROM reports WHERE kind = 'spike' AND created_at >= ?"
        " AND window_end >= ? AND name = ? AND coalesce(brand, '') = ?"
        " AND coalesce(source, '') = ?",
        [stamp, stamp, name, brand or "", source or ""],
    )
    return [SpikeWindow(parse_iso(end), tuple(json.loads(payload).get("numbers", {})
                                              .get("spikes", [])))
            for end, payload in rows]


def report_alert_status(db: Db, report: Report, destination: str) -> str | None:
    """The outbox status of ``report``'s alert to ``destination``; None when it has none.

    An incident sends its updates only where its first message exists and has settled."""
    row = db.execute("SELECT status FROM alerts WHERE id = ?",
                     [report_alert_id(report, destination)]).fetchone()
    return str(row[0]) if row is not None else None


# the newest report about one incident, by its payload's numbers.incident. Two statements:
# PostgreSQL has no json_extract, and its -> / ->> need a json value, so the text payload is
# CAST first, a cast SQLite would read as a conversion to a number. ->> gives text, as
# json_extract does for a string (incident ids are strings).
_LAST_INCIDENT_REPORT_SQLITE = (
    "SELECT max(created_at) FROM reports WHERE kind = ? AND name = ? AND brand = ?"
    " AND json_extract(payload, '$.numbers.incident') = ?"
)
_LAST_INCIDENT_REPORT_PG = (
    "SELECT max(created_at) FROM reports WHERE kind = ? AND name = ? AND brand = ?"
    " AND CAST(payload AS json) -> 'numbers' ->> 'incident' = ?"
)


def last_incident_report_at(db: Db, kind: str, name: str, brand: str,
                            incident_id: str) -> datetime | None:
    """When the newest ``kind`` report about incident ``incident_id`` (its ``numbers.incident``)
    was written; None before the first: how long the incident's next update waits."""
    sql = pick(db, sqlite=_LAST_INCIDENT_REPORT_SQLITE, postgresql=_LAST_INCIDENT_REPORT_PG)
    last = db.execute(sql, [kind, name, brand, incident_id]).fetchone()[0]
    return parse_iso(last) if last is not None else None


_EXAMPLE = (
    f"SELECT {SCORE_COLUMNS}, p.* FROM posts p JOIN scores s ON s.id ="  # noqa: S608 (constant)
    " (SELECT max(id) FROM scores WHERE post_id = p.id) WHERE p.id = ?"
)


def message_for(db: Db, row: dict[str, Any]) -> ReportMessage:
    """The message dispatch hands to a sink for an outbox row that points at a report."""
    rep = next(db.query("SELECT * FROM reports WHERE id = ?", [row["report_id"]]))
    payload = json.loads(rep["payload"])
    examples: list[tuple[Post, Score]] = []
    for post_id in payload.get("examples", []):  # a handful: one small query each
        found = list(db.query(_EXAMPLE, [int(post_id)]))
        if found:
            examples.append((post_from_row(found[0]), score_from_row(found[0])))
    parent = payload.get("parent")
    parent_alert = (outbox.alert_id(rep["name"], f"report:{parent}", row["destination"])
                    if parent else None)
    return ReportMessage(
        alert_id=row["alert_id"], report_id=rep["id"], kind=rep["kind"], name=rep["name"],
        destination=row["destination"], title=rep["title"],
        window_start=parse_iso(rep["window_start"]), window_end=parse_iso(rep["window_end"]),
        brand=rep["brand"], source=rep["source"], summary=payload.get("summary", ""),
        facts=tuple((str(k), str(v)) for k, v in payload.get("facts", [])),
        terms=tuple(payload.get("terms", [])), examples=tuple(examples),
        example_post_ids=tuple(int(i) for i in payload.get("examples", [])), parent_id=parent,
        numbers=payload.get("numbers", {}),
        chart_png=rep["chart_png"], priority=row.get("priority") or "normal",
        attempt=int(row.get("attempts") or 0) + 1,
        reply_to=outbox.remote_id(db, parent_alert) if parent_alert else None,
        parent_alert_id=parent_alert,
    )
