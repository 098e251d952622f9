"""``listener status`` (health, stages, queues and paused sources, for a person) and ``listener
metrics`` (the same database's gauges in Prometheus text format, for cron set-ups).

Thin: the work is in :mod:`listener.health` and :mod:`listener.metrics`.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click

from listener.commands.options import config_option, load_for_command
from listener.config import Config
from listener.core.models import parse_iso, utcnow
from listener.health import Snapshot, StageState, load_snapshot
from listener.terminal_tables import age, table
from listener.workers import QUIET_AFTER
from storage.engine import database_errors


@click.command()
@config_option
def status(config_path: str) -> None:
    """Health (as /healthz answers it, and why), stages' last runs, queue depths and paused
    sources. FAILING while a stage fails too long, an alert is parked or a destination keeps
    failing."""
    config = load_for_command(config_path)
    try:
        snapshot = load_snapshot(config)
    except database_errors() as exc:  # missing, not migrated, not a database
        raise click.ClickException(f"cannot read {config.database}: {exc}") from None
    click.echo(render_status(snapshot, config, utcnow()))


def render_status(snapshot: Snapshot, config: Config, now: datetime) -> str:
    """The verdict (what /healthz answers, and why), stages, queues and paused sources."""
    ran = {s.stage for s in snapshot.stages if s.last_run}
    # a dispatch target that never ran (cron dispatches all at once, the daemon per
    # destination) is noise beside the one that did
    rows = [_stage_row(s, now) for s in snapshot.stages
            if s.last_run or s.stage != "dispatch" or "dispatch" not in ran]
    queues = [[name, depth] for name, depth in asdict(snapshot.queues).items()]
    lines = [
        f"database: {config.database}",
        f"health: {verdict(snapshot, now, config.metrics.unhealthy_after)}",
        *(f"  destination {d.destination}: last error: {d.last_error}"
          for d in snapshot.failing_destinations),
        "",
        table(["stage", "target", "last run", "result", "last success", "failing for", "error"],
              rows),
        "",
        table(["queue", "depth"], queues),
    ]
    for source, until in sorted(snapshot.paused.items()):
        if parse_iso(until) > now:  # an expired pause is cleared by the source's next poll
            lines.append(f"paused: {source} until {until} (rate limit)")
    lines += _workers(snapshot, now)
    return "\n".join(lines)


def _workers(snapshot: Snapshot, now: datetime) -> list[str]:
    """Every worker (host, pid, stages, last heartbeat) and every lease, stale ones marked:
    on PostgreSQL, which machines are working and what a dead one left behind."""
    if not snapshot.workers:
        return []
    rows = []
    for w in snapshot.workers:
        quiet = (now - parse_iso(w.heartbeat_at)).total_seconds()
        state = ("stopped" if w.stopped_at else "QUIET" if quiet > QUIET_AFTER else "working")
        rows.append([w.host, w.pid, w.stages, state, age(quiet), w.started_at])
    lines = ["", table(["host", "pid", "stages", "state", "last heartbeat", "started"], rows)]
    if snapshot.leases:
        held = [[lease.name, lease.owner, lease.until,
                 "STALE (free to take)" if parse_iso(lease.until) < now else "held"]
                for lease in snapshot.leases]
        lines += ["", table(["lease", "owner", "until", "state"], held)]
    return lines


def verdict(snapshot: Snapshot, now: datetime, unhealthy_after: int) -> str:
    """``ok``, or ``FAILING:`` and every reason: stages failing too long, parked alerts,
    destinations that keep failing."""
    reasons = [f"{s.name} for {age(s.failing_for(now))}"
               for s in snapshot.unhealthy(now, unhealthy_after)]
    if snapshot.parked:
        reasons.append(f"{snapshot.parked} alert(s) parked as failed "
                       "(`listener alerts list --status failed` shows why)")
    reasons += [f"destination {d.destination} keeps failing ({d.retrying} alert(s) retrying, "
                f"nothing delivered since {d.since})" for d in snapshot.failing_destinations]
    reasons += [f"{r.name} STUCK: no progress for {age(r.idle_for(now))} (running since "
                f"{r.started_at})" for r in snapshot.stuck(now)]
    return "FAILING: " + "; ".join(reasons) if reasons else "ok"


def _stage_row(stage: StageState, now: datetime) -> list[object]:
    failing = stage.failing_for(now)
    error = " ".join((stage.error or "").split())
    return [stage.stage, stage.target or "-", stage.last_run or "never", stage.status or "-",
            stage.last_ok or "never", age(failing) if failing else "-",
            error[:60] + ("…" if len(error) > 60 else "")]


@click.command()
@config_option
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write to this file atomically (node_exporter's textfile collector).")
def metrics(config_path: str, output: str | None) -> None:
    """Print the database's gauges in Prometheus text format (for cron set-ups)."""
    from prometheus_client import generate_latest

    from listener.metrics import scrape_registry

    text = generate_latest(scrape_registry(load_for_command(config_path), with_process=False))
    if output is None:
        click.echo(text.decode(), nl=False)
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(text)
    os.replace(partial, target)  # the collector must never read a half-written file
