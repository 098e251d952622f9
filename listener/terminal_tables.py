"""Plain-text tables for the terminal (summary after a run, alert listings)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime
from itertools import zip_longest

from sqlite_utils import Database

from listener.core.log import redact
from listener.core.models import parse_iso
from storage import alert_log, summaries
from storage.alert_log import AlertSort, ListedAlert

ERROR_WIDTH = 56  # the last-error column wraps at this width: the whole cause, never cut


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned text table; numbers right-aligned. A cell with newlines spans as many
    lines (the other cells of its row stay on the first)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(line) for row in cells for line in row[i].split("\n"))
              for i in range(len(headers))]
    numeric = [all(isinstance(r[i], int | float) for r in rows) and rows for i in range(len(headers))]

    def fmt(row: list[str]) -> list[str]:
        lines = zip_longest(*(c.split("\n") for c in row), fillvalue="")
        return ["  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                          for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                for line in lines]

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([*fmt(cells[0]), rule, *(line for r in cells[1:] for line in fmt(r))])


def age(seconds: float) -> str:
    """``45s``, ``3m``, ``2.1h``, ``3.5d``: how long ago, at a glance."""
    if seconds < 120:
        return f"{max(seconds, 0):.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def wrap_error(text: str, width: int = ERROR_WIDTH) -> str:
    """The whole error, on lines of about ``width``: words (an exception's class name, a URL)
    are never broken, so the cause is never cut off as a 60-character cut did."""
    flat = " ".join(redact(text).split())
    return "\n".join(textwrap.wrap(flat, width, break_long_words=False,
                                   break_on_hyphens=False)) or "-"


# -- listener alerts list ---------------------------------------------------------------------

ALERT_HEADERS = ["last error", "age", "status", "destination", "tries", "post", "rule", "id"]


def alert_row(alert: ListedAlert, now: datetime) -> list[object]:
    """One listing row: the cause first (the whole error, wrapped), then age, post and the rest."""
    if alert.report_kind:
        post = f"report {alert.report_kind}"
    elif alert.platform:
        post = f"{alert.platform}:{alert.platform_id}"
    else:
        post = "-"
    seconds = (now - parse_iso(alert.created_at)).total_seconds()
    return [wrap_error(alert.last_error or ""), age(seconds), alert.status,
            alert.destination, alert.attempts, post, alert.rule, alert.id[:12]]


def alerts_listing(
    db: Database, status: str | None, limit: int, sort: AlertSort, now: datetime
) -> str:
    """``listener alerts list``: a table of alerts, or a line saying there are none."""
    rows = [alert_row(a, now) for a in alert_log.listed(db, status, limit, sort)]
    if not rows:
        return f"no {status} alerts" if status else "no alerts"
    return table(ALERT_HEADERS, rows)


def summary(db: Database) -> str:
    """Posts by source and sentiment, then alerts by rule, destination and status."""
    posts = summaries.posts_by_source_and_sentiment(db)
    rejects = summaries.rejects_by_source(db)
    post_rows = [
        [src, *(counts[s] for s in summaries.SENTIMENTS), sum(counts.values()), rejects.get(src, 0)]
        for src, counts in sorted(posts.items())
    ]
    if post_rows:
        post_rows.append(["TOTAL", *(sum(r[i] for r in post_rows)
                                     for i in range(1, len(post_rows[0])))])
    alerts = summaries.alerts_by_rule_and_status(db)
    alert_rows = [[a["rule"], a["destination"], a["status"], a["n"]] for a in alerts]
    parts = [
        "Posts by source and sentiment",
        table(["source", *summaries.SENTIMENTS, "total", "rejected"], post_rows),
        "",
        "Alerts by rule and status",
        table(["rule", "destination", "status", "alerts"], alert_rows) if alert_rows
        else "(no alerts)",
    ]
    return "\n".join(parts)
