"""Plain-text tables for the terminal (summary after a run, alert listings)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from storage import queries


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned text table; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(r[i], int | float) for r in rows) and rows for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])])


def summary(db: Database) -> str:
    """Posts by source and sentiment, then alerts by rule, destination and status."""
    posts = queries.posts_by_source_and_sentiment(db)
    rejects = queries.rejects_by_source(db)
    post_rows = [
        [src, *(counts[s] for s in queries.SENTIMENTS), sum(counts.values()), rejects.get(src, 0)]
        for src, counts in sorted(posts.items())
    ]
    if post_rows:
        post_rows.append(["TOTAL", *(sum(r[i] for r in post_rows) for i in range(1, 7))])
    alerts = queries.alerts_by_rule_and_status(db)
    alert_rows = [[a["rule"], a["destination"], a["status"], a["n"]] for a in alerts]
    parts = [
        "Posts by source and sentiment",
        table(["source", *queries.SENTIMENTS, "total", "rejected"], post_rows),
        "",
        "Alerts by rule and status",
        table(["rule", "destination", "status", "alerts"], alert_rows) if alert_rows
        else "(no alerts)",
    ]
    return "\n".join(parts)
