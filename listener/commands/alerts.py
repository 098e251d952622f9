"""``listener alerts``: the outbox, ``alerts list`` (what was sent, held or parked, and why)
and ``alerts retry`` (re-queue parked alerts).

Thin: the work is in :mod:`listener.terminal_tables` and :mod:`storage.outbox`.
"""

from __future__ import annotations

from typing import Any

import click

from listener.commands.options import config_option, load_for_command


@click.group()
def alerts() -> None:
    """Inspect and re-queue alerts in the outbox."""


@alerts.command("list")
@config_option
@click.option("--status", default=None,
              type=click.Choice(["pending", "delivered", "failed", "dry_run", "suppressed",
                                 "held", "digested"]))
@click.option("--sort", default="newest", show_default=True,
              type=click.Choice(["newest", "priority"]),
              help="newest first, or priority (high, normal, low; then rank, newest).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def alerts_list(config_path: str, status: str | None, sort: str, limit: int) -> None:
    """Show alerts: the last error first (whole, wrapped), then age, status, destination,
    attempts, the post (platform:id, or the report's kind), rule and id."""
    from listener.core.models import utcnow
    from listener.terminal_tables import alerts_listing
    from storage.db import open_db

    conn = open_db(load_for_command(config_path).database)
    try:
        click.echo(alerts_listing(conn, status, limit, sort, utcnow()))  # type: ignore[arg-type]
    finally:
        conn.close()


@alerts.command("retry")
@config_option
@click.argument("ids", nargs=-1)
def alerts_retry(config_path: str, ids: tuple[str, ...]) -> None:
    """Re-queue parked (failed) alerts: all of them, or the given ids (or unique prefixes).

    An id that matches no alert, matches several, or names an alert that is not failed is
    reported; the others are re-queued, and the exit status is 1.
    """
    from listener.core.models import utcnow
    from storage import alert_log
    from storage.db import open_db
    from storage.outbox import requeue_failed

    conn = open_db(load_for_command(config_path).database)
    try:
        if ids:
            wanted, problems = resolve_alert_ids(conn, ids)
        else:
            wanted = alert_log.failed_ids(conn)
            problems = []
        count = requeue_failed(conn, utcnow(), wanted) if wanted else 0
    finally:
        conn.close()
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"re-queued {count} alert(s)" if count or ids else "no failed alerts to re-queue")
    if problems:
        raise click.ClickException(f"{len(problems)} of {len(ids)} id(s) not re-queued")


def resolve_alert_ids(conn: Any, ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``(full ids of failed alerts, problems)`` for ids or prefixes typed by a person: an id
    matching nothing, several alerts, or an alert that is not failed is a problem, named."""
    from storage import alert_log

    wanted: list[str] = []
    problems: list[str] = []
    for given in dict.fromkeys(ids):  # each once, in the order given
        prefix = given.strip().lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            problems.append(f"{given!r} is not an alert id (hex digits, as `alerts list` shows)")
            continue
        found = alert_log.with_prefix(conn, prefix)
        if not found:
            problems.append(f"no alert matches {given}")
        elif len(found) > 1:
            shown = ", ".join(i[:12] for i, _ in found[:5]) + (", …" if len(found) > 5 else "")
            problems.append(f"{given} is ambiguous: it matches {shown}; give more of the id")
        elif found[0][1] != "failed":
            problems.append(f"alert {given} is {found[0][1]}, not failed: nothing to retry")
        else:
            wanted.append(found[0][0])
    return wanted, problems
