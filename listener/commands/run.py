"""``listener run`` (the pipeline: a daemon, or every stage once for cron) and ``listener
summary`` (the posts and alerts tables ``run --summary`` prints at the end).

Thin: the work is in :mod:`listener.pipeline`, :mod:`listener.scheduler` and
:mod:`listener.terminal_tables`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from listener.commands.options import config_option, load_for_command, take_lock
from listener.config import Config
from listener.workers import STAGES, parse_stages

if TYPE_CHECKING:
    from collections.abc import Callable

    from listener.pipeline import Runtime

EXIT_DELIVERIES_FAILED = 4  # run --once: alerts were parked as failed during the run


def _stages(_ctx: click.Context, _param: click.Parameter, value: str) -> frozenset[str]:
    try:
        return parse_stages(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Run every stage once, in order, then exit (cron).")
@click.option("--summary", is_flag=True, help="Print posts and alerts tables at the end.")
@click.option("--stages", default=",".join(STAGES), show_default=True, callback=_stages,
              help="The stages this worker runs (several workers on PostgreSQL share the "
              "work; see README 'Scaling out').")
@click.option("--metrics-port", type=click.IntRange(0, 65535), envvar="LISTENER_METRICS_PORT",
              help="Serve /metrics and /healthz on this port instead of metrics.port: one per "
              "worker on a machine running several (env LISTENER_METRICS_PORT).")
def run(config_path: str, once: bool, summary: bool, stages: frozenset[str],
        metrics_port: int | None) -> None:
    """Run the pipeline: as a daemon, or once with --once.

    On SQLite the run takes the database's lock first; while another run holds it, this one
    exits at once with status 75 (EX_TEMPFAIL) and does nothing. On PostgreSQL any number of
    runs work side by side, each claiming its work, and `listener status` lists them. On a terminal, --once shows
    each stage's progress on stderr (never in cron, never with JSON logs).

    \b
    Exit statuses of --once, for cron:
      0   every stage ran and no alert was parked
      1   a stage failed (see the log; the next run retries it); wins over 4
      4   alerts were parked as failed in this run: a delivery failed permanently
          (a bad token, an unknown channel) or ran out of attempts; see
          `listener alerts list --status failed`, then `listener alerts retry`
      75  another run holds the (SQLite) database's lock; nothing was done
    """
    from listener.pipeline import Runtime

    config = load_for_command(config_path)
    if metrics_port is not None:
        config.metrics = config.metrics.model_copy(update={"port": metrics_port})
    run_lock = take_lock(config)
    try:
        mark = _deliveries_mark(config) if once else 0
        runtime = Runtime(config, progress=_progress(config, mark) if once else None,
                          stages=stages)
        ok = _run_locked(runtime, once)
        parked = _parked_since(config, mark) if once else 0
    finally:
        if run_lock is not None:
            run_lock.release()
    if summary and once:
        _print_summary(config)
    if parked:
        click.echo(f"{parked} alert(s) parked as failed in this run: `listener alerts list "
                   "--status failed` shows why, `listener alerts retry` re-queues them", err=True)
    if not ok:
        raise click.ClickException("a stage failed; see the log above (the next run retries it)")
    if parked:
        raise click.exceptions.Exit(EXIT_DELIVERIES_FAILED)


def _deliveries_mark(config: Config) -> int:
    """The newest delivery attempt before the run: the run's own attempts come after it (ids,
    not times: immune to a clock that jumps during the run)."""
    import sqlite3

    from listener.core.errors import StorageError
    from storage.delivery_outcomes import deliveries_mark
    from storage.tx import connect

    if isinstance(config.database, Path) and not config.database.exists():
        return 0
    try:
        db = connect(config.database)
        try:
            return deliveries_mark(db)
        finally:
            db.close()
    except (sqlite3.Error, StorageError, OSError):  # unreadable: the run itself reports that
        return 0


def _parked_since(config: Config, mark: int) -> int:
    """Alerts whose delivery attempt after ``mark`` parked them as failed."""
    from storage.delivery_outcomes import outcomes_since
    from storage.tx import connect

    db = connect(config.database)
    try:
        return outcomes_since(db, mark).get("failed", 0)
    finally:
        db.close()


def _progress(config: Config, mark: int) -> Callable[[str, str, str, int | None], None] | None:
    """Stage progress on stderr when a person watches it (a terminal, text logs), else None."""
    from listener.progress import for_run, wanted

    ctx = click.get_current_context(silent=True)
    options = ctx.find_root().obj if ctx is not None else None
    given = options.get("log_format") if isinstance(options, dict) else None
    if not wanted(sys.stderr, given or config.log.format):
        return None
    return for_run(config.database, mark, sys.stderr)


def _run_locked(runtime: Runtime, once: bool) -> bool:
    for name, why in runtime.config.disabled.items():
        click.echo(f"destination '{name}' is off: {why}", err=True)
    if not once:
        from listener.metrics import serve
        from listener.scheduler import run_daemon

        server = serve(runtime.config)
        try:
            run_daemon(runtime)
        finally:
            if server is not None:
                server.shutdown()
        return True
    try:
        return runtime.run_once()
    finally:
        runtime.close()


@click.command()
@config_option
def summary(config_path: str) -> None:
    """Print posts by source and sentiment, and alerts by rule and status."""
    _print_summary(load_for_command(config_path))


def _print_summary(config: Config) -> None:
    """The posts and alerts tables, on stdout."""
    from listener.terminal_tables import summary
    from storage.db import open_db

    db = open_db(config.database)
    try:
        click.echo(summary(db))
    finally:
        db.close()
