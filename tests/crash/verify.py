"""What the crash harness counts at the end: the fakes' records against the database's.

The platform fake knows every story it created and served, the Slack fake every message it
received, the Zendesk fake every ticket it holds. Which alerts *should* exist is derived from the
database's scores with the rule (negative → Slack and Zendesk) and the deterministic alert id, not
from the ``alerts`` table, so an alert the rules stage lost would be counted as lost too.

The database is the SQLite file of the single-daemon mode or, in the PostgreSQL mode, a
``postgresql://`` URL shared by every worker; there the count adds what the workers left behind
once all were stopped: leases still held by a cleanly stopped worker (must be 0: a stop frees
everything), leases left by killed workers, and runs a killed worker left ``running``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.outbox import alert_id
from tests.crash.daemon import RULE, read_db

# the Slack message names its alert in the context line: "... · alert `<id>`"
SLACK_ALERT_ID = re.compile(r"alert `([0-9a-f]{32})`")


@dataclass
class Delivery:
    """One destination's alerts: expected, delivered, lost, duplicated, unexpected."""

    expected: int = 0
    delivered: int = 0  # marked delivered in the database and received by the fake
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0  # extra copies the fake received
    unexpected: int = 0  # alert ids the fake received that no post called for
    parked: int = 0  # status failed in the database


@dataclass
class Totals:
    created: int
    served: int
    stored: int
    posts_lost: list[str]
    posts_duplicated: int
    unscored: int
    unevaluated: int
    slack: Delivery
    tickets: Delivery | None
    workers: Workers | None = None  # PostgreSQL: what the workers left behind
    rollups_off: int = 0  # trend cells (with moves still pending) that a recount contradicts

    @property
    def ok(self) -> bool:
        """0 posts lost, 0 alerts lost, 0 duplicate tickets (Slack duplicates are reported);
        with workers, 0 leases held by a worker that stopped cleanly."""
        tickets = self.tickets or Delivery()
        return not (self.posts_lost or self.posts_duplicated or self.unscored
                    or self.unevaluated or self.slack.lost or tickets.lost
                    or tickets.duplicates or self.slack.unexpected or tickets.unexpected
                    or self.rollups_off or (self.workers is not None and self.workers.leases_of_stopped))


@dataclass
class Workers:
    """PostgreSQL, after every worker stopped: leases and runs left behind."""

    stopped: int  # workers registered with a clean stop
    killed: int  # workers registered that never said they stopped (SIGKILLed)
    leases_of_stopped: int  # must be 0: a clean stop releases everything
    leases_of_killed: Counter[str]  # by kind (source, stage, dispatch, classify claims)
    claims_done: int  # of those, claims on work done since (alert recorded, post scored)
    runs_interrupted: Counter[str]  # runs left 'running', by stage: only killed workers' remain


def _connect(database: Path | str) -> Any:
    if isinstance(database, str):
        import psycopg

        return psycopg.connect(database, autocommit=True)
    return read_db(database)


def lease_kind(name: str) -> str:
    """``source:hn`` → ``source:hn``; a claim on one post or alert (``classify:<model>:
    <version>:42``, ``alert:<id>``) → ``classify claim``, ``alert claim``."""
    for prefix in ("classify", "alert"):
        if name.startswith(f"{prefix}:"):
            return f"{prefix} claim"
    return name


def count(database: Path | str, created: Iterable[str], served: Iterable[str],
          slack_bodies: Iterable[bytes], tickets: list[dict] | None) -> Totals:
    """``database``: the SQLite file, or a ``postgresql://`` URL (then workers are counted)."""
    conn = _connect(database)
    workers = None
    try:
        if isinstance(database, str):
            workers = _workers(conn)
        stored = Counter(r[0] for r in conn.execute(
            "SELECT platform_id FROM posts WHERE platform = 'hackernews'"))
        unscored = conn.execute("SELECT count(*) FROM posts p WHERE NOT EXISTS"
                                " (SELECT 1 FROM scores s WHERE s.post_id = p.id)").fetchone()[0]
        unevaluated = conn.execute(
            "SELECT count(*) FROM scores WHERE rules_at IS NULL").fetchone()[0]
        negative = [r[0] for r in conn.execute(
            "SELECT p.platform_id FROM posts p JOIN scores s ON s.post_id = p.id"
            " WHERE s.sentiment = 'negative' AND p.duplicate_of IS NULL")]
        status = {r[0]: r[1] for r in conn.execute("SELECT id, status FROM alerts")}
        rollups_off = _rollups_off(conn, postgresql=isinstance(database, str))
    finally:
        conn.close()
    created, served = list(created), set(served)
    slack_got = Counter(i for body in slack_bodies
                        for i in set(SLACK_ALERT_ID.findall(body.decode("utf-8", "replace"))))
    return Totals(
        created=len(created), served=len(served), stored=len(stored),
        posts_lost=sorted((set(created) | served) - set(stored), key=int),
        posts_duplicated=sum(n - 1 for n in stored.values() if n > 1),
        unscored=unscored, unevaluated=unevaluated,
        slack=_delivery(negative, "slack", status, slack_got),
        tickets=None if tickets is None else _delivery(
            negative, "tickets", status, Counter(t["external_id"] for t in tickets)),
        workers=workers, rollups_off=rollups_off,
    )


# each rollup recounted from scratch: a post counts once in the cell of its newest score's label
_RECOUNT = """
SELECT substr(p.created_at, 1, {width}), {brand}, coalesce(p.source, ''),
       coalesce(CASE WHEN s.language_supported = 0 THEN 'unsupported' ELSE s.sentiment END,
                'unscored'), count(*), coalesce(sum(CASE WHEN s.urgency >= 0.5 THEN 1 ELSE 0 END), 0)
FROM posts p {extra}
LEFT JOIN scores s ON s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)
GROUP BY 1, 2, 3, 4
"""
_ROLLUPS = (("post_days", 10, False), ("post_hours", 13, False), ("post_days_extra", 10, True),
            ("post_hours_extra", 13, True))


def _rollups_off(conn: Any, *, postgresql: bool) -> int:
    """Cells of the trends' rollups that a recount from the posts and their newest scores
    contradicts, read as the trends read them: on PostgreSQL with the moves of score batches
    still pending (a worker killed between a batch and its fold leaves some)."""
    off = 0
    for table, width, extra in _ROLLUPS:
        cells = table
        if postgresql:
            columns = "bucket, brand, source, sentiment, n, urgent"
            cells = (f"(SELECT {columns} FROM {table} UNION ALL SELECT {columns}"
                     f" FROM rollup_pending WHERE rollup = '{table}') c")
        read = {tuple(r[:4]): (int(r[4]), int(r[5])) for r in conn.execute(
            f"SELECT bucket, brand, source, sentiment, sum(n), sum(urgent) FROM {cells}"
            " GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0")}
        recount = {tuple(r[:4]): (int(r[4]), int(r[5])) for r in conn.execute(_RECOUNT.format(
            width=width, brand="e.brand" if extra else "coalesce(p.brand, '')",
            extra="JOIN post_extra_brands e ON e.post_id = p.id" if extra else ""))}
        off += sum(read.get(k) != recount.get(k) for k in set(read) | set(recount))
    return off


def _workers(conn: Any) -> Workers:
    stopped = {r[0]: r[1] is not None for r in conn.execute("SELECT id, stopped_at FROM workers")}
    held = [(r[0], r[1]) for r in conn.execute("SELECT name, owner FROM leases")]
    return Workers(
        stopped=sum(stopped.values()), killed=sum(not s for s in stopped.values()),
        leases_of_stopped=sum(1 for _, owner in held if stopped.get(owner, False)),
        leases_of_killed=Counter(lease_kind(name) for name, owner in held
                                 if not stopped.get(owner, False)),
        claims_done=conn.execute(  # a claim a worker died holding after its work was saved
            "SELECT count(*) FROM leases l LEFT JOIN workers w ON w.id = l.owner"
            " WHERE w.stopped_at IS NULL AND (EXISTS (SELECT 1 FROM alerts a"
            " WHERE 'alert:' || a.id = l.name AND a.status <> 'pending')"
            " OR EXISTS (SELECT 1 FROM scores s WHERE l.name LIKE 'classify:%'"
            " AND l.name = 'classify:' || s.model || ':' || s.model_version || ':'"
            " || CAST(s.post_id AS TEXT)))").fetchone()[0],
        runs_interrupted=Counter(r[0] for r in conn.execute(
            "SELECT stage FROM runs WHERE status = 'running'")),
    )


def _delivery(negative: list[str], destination: str, status: dict[str, str],
              got: Counter[str]) -> Delivery:
    expected = {alert_id(RULE, f"hackernews:{pid}", destination) for pid in negative}
    result = Delivery(expected=len(expected))
    for aid in sorted(expected):
        if status.get(aid) == "delivered" and got[aid] > 0:
            result.delivered += 1
        else:
            result.lost.append(aid)
        result.parked += status.get(aid) == "failed"
    result.duplicates = sum(n - 1 for aid, n in got.items() if aid in expected and n > 1)
    result.unexpected = sum(n for aid, n in got.items() if aid not in expected)
    return result


def table(totals: Totals, kills: Counter[str], hits: Counter[str]) -> str:
    """The totals as aligned text."""
    rows = [
        ("posts created by the platform", totals.created),
        ("posts served", totals.served),
        ("posts stored", totals.stored),
        ("posts lost", len(totals.posts_lost)),
        ("posts stored twice", totals.posts_duplicated),
        ("posts not scored / not through the rules", f"{totals.unscored} / {totals.unevaluated}"),
        ("trend cells a recount contradicts (pending moves included)", totals.rollups_off),
    ]
    for name, d in (("Slack", totals.slack), ("Zendesk", totals.tickets)):
        if d is None:
            continue
        rows += [
            (f"{name}: alerts expected", d.expected),
            (f"{name}: delivered (in the database and at the fake)", d.delivered),
            (f"{name}: lost", len(d.lost)),
            (f"{name}: duplicate {'messages' if name == 'Slack' else 'tickets'}", d.duplicates),
            (f"{name}: unexpected / parked as failed", f"{d.unexpected} / {d.parked}"),
        ]
    w = totals.workers
    if w is not None:
        rows += [
            ("workers stopped cleanly / killed", f"{w.stopped} / {w.killed}"),
            ("leases held by a cleanly stopped worker", w.leases_of_stopped),
            ("leases left by killed workers", _listed(w.leases_of_killed)),
            ("  of which claims on work since done (never taken again)", w.claims_done),
            ("runs left 'running' by killed workers (interrupted)",
             _listed(w.runs_interrupted)),
        ]
    rows += [(f"kills aimed at {k}", n) for k, n in sorted(kills.items())]
    rows += [(f"kills that hit {k}", n) for k, n in sorted(hits.items())]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _listed(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return f"{total} ({', '.join(f'{k} {n}' for k, n in sorted(counts.items()))})" if total \
        else "0"
