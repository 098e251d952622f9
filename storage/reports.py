"""Reports: alerts about many posts at once (spikes, digests, alerts held over quiet hours).

A report is written once with the alerts that deliver it, in one transaction, so a crash either
leaves both or neither. Its id is deterministic (kind, name, brand, source, window), so a stage
that runs again for the same window adds nothing; its alerts go through the ordinary outbox.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.core.models import Post, ReportMessage, Score, parse_iso, to_iso
from storage import outbox
from storage.db import SCORE_COLUMNS, scrubbed
from storage.tx import immediate


@dataclass(frozen=True)
class Report:
    """What a spike detector or digest decided to say, before it is routed anywhere."""

    kind: str  # "spike" | "digest" | "held"
    name: str
    title: str
    window_start: datetime
    window_end: datetime
    brand: str | None = None
    source: str | None = None
    summary: str = ""
    facts: Sequence[tuple[str, str]] = ()
    terms: Sequence[str] = ()
    example_post_ids: Sequence[int] = ()
    numbers: dict[str, Any] = field(default_factory=dict)  # machine-readable, for webhooks/API
    chart_png: bytes | None = None
    priority: str = "normal"
    # what identifies the report when its window does not (an incident's first message stays
    # the same report whatever reports join later); default: kind, name, brand, source, window
    key: str | None = None
    # the report this one updates (an incident's first message): sinks thread or comment
    parent_id: str | None = None

    @property
    def id(self) -> str:
        key = self.key or "\x1f".join([self.kind, self.name, self.brand or "",
                                       self.source or "", to_iso(self.window_start),
                                       to_iso(self.window_end)])
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def report_alert_id(report: Report, destination: str) -> str:
    """The outbox id of ``report``'s alert to ``destination``."""
    return outbox.alert_id(report.name, f"report:{report.id}", destination)


def enqueue_report(
    db: Database, report: Report, destinations: Iterable[str], now: datetime,
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
    return max(cur.rowcount, 0)


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


def last_report_at(db: Database, kind: str, name: str, brand: str | None,
                   source: str | None) -> datetime | None:
    """End of the newest window reported for this (kind, name, brand, source): cooldowns."""
    row = db.execute(
        "SELECT max(window_end) FROM reports WHERE kind = ? AND name = ?"
        " AND coalesce(brand, '') = ? AND coalesce(source, '') = ?",
        [kind, name, brand or "", source or ""],
    ).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


_EXAMPLE = (
    f"SELECT {SCORE_COLUMNS}, p.* FROM posts p JOIN scores s ON s.id ="  # noqa: S608 (constant)
    " (SELECT max(id) FROM scores WHERE post_id = p.id) WHERE p.id = ?"
)


def message_for(db: Database, row: dict[str, Any]) -> ReportMessage:
    """The message dispatch hands to a sink for an outbox row that points at a report."""
    from storage.db import post_from_row, score_from_row

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
        alert_id=row["alert_id"], kind=rep["kind"], name=rep["name"],
        destination=row["destination"], title=rep["title"],
        window_start=parse_iso(rep["window_start"]), window_end=parse_iso(rep["window_end"]),
        brand=rep["brand"], source=rep["source"], summary=payload.get("summary", ""),
        facts=tuple((str(k), str(v)) for k, v in payload.get("facts", [])),
        terms=tuple(payload.get("terms", [])), examples=tuple(examples),
        numbers=payload.get("numbers", {}),
        chart_png=rep["chart_png"], priority=row.get("priority") or "normal",
        attempt=int(row.get("attempts") or 0) + 1,
        reply_to=outbox.remote_id(db, parent_alert) if parent_alert else None,
        parent_alert_id=parent_alert,
    )
