"""The command line. Thin: parse options, call library functions, turn errors into messages.

Only this module turns a ListenerError into an exit status; everything below raises.

Exit statuses: 0 done; 1 an error (a bad config, a stage that failed, a check that failed);
2 a usage error; 4 ``run --once`` parked alerts as failed (deliveries failed permanently);
75 another run holds the database's lock (EX_TEMPFAIL); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from listener.cli_options import add_log_options, config_option, load_for_command
from listener.config import Config
from listener.core.errors import ListenerError
from listener.core.log import setup_logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from listener.lock import RunLock
    from listener.pipeline import Runtime

EXIT_DELIVERIES_FAILED = 4  # run --once: alerts were parked as failed during the run


@click.group()
@click.option("--log-level", default="INFO", envvar="LISTENER_LOG_LEVEL", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", default=None, envvar="LISTENER_LOG_FORMAT",
              type=click.Choice(["text", "json"]),
              help="Log lines as text or JSON objects [default: the config's log.format, text].")
@click.version_option(package_name="social-listener")
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_format: str | None) -> None:
    """listener: collect brand mentions, score them, alert the humans who can help."""
    ctx.obj = {"log_level": log_level, "log_format": log_format}
    setup_logging(log_level, "json" if log_format == "json" else "text")


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="Run every stage once, in order, then exit (cron).")
@click.option("--summary", is_flag=True, help="Print posts and alerts tables at the end.")
def run(config_path: str, once: bool, summary: bool) -> None:
    """Run the pipeline: as a daemon, or once with --once.

    Either way the run takes the database's lock first; while another run holds it, this one
    exits at once with status 75 (EX_TEMPFAIL) and does nothing. On a terminal, --once shows
    each stage's progress on stderr (never in cron, never with JSON logs).

    \b
    Exit statuses of --once, for cron:
      0   every stage ran and no alert was parked
      1   a stage failed (see the log; the next run retries it); wins over 4
      4   alerts were parked as failed in this run: a delivery failed permanently
          (a bad token, an unknown channel) or ran out of attempts; see
          `listener alerts list --status failed`, then `listener alerts retry`
      75  another run holds the database's lock; nothing was done
    """
    from listener.pipeline import Runtime

    config = load_for_command(config_path)
    run_lock = _take_lock(config)
    try:
        mark = _deliveries_mark(config) if once else 0
        runtime = Runtime(config, progress=_progress(config, mark) if once else None)
        ok = _run_locked(runtime, once)
        parked = _parked_since(config, mark) if once else 0
    finally:
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

    from listener.health import deliveries_mark
    from storage.tx import connect

    if not config.db_path.exists():
        return 0
    try:
        db = connect(config.db_path)
        try:
            return deliveries_mark(db)
        finally:
            db.close()
    except sqlite3.Error:  # unreadable: the run itself reports that
        return 0


def _parked_since(config: Config, mark: int) -> int:
    """Alerts whose delivery attempt after ``mark`` parked them as failed."""
    from listener.health import outcomes_since
    from storage.tx import connect

    db = connect(config.db_path)
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
    return for_run(config.db_path, mark, sys.stderr)


def _take_lock(config: Config) -> RunLock:
    """The database's run lock, or exit 75 (EX_TEMPFAIL) at once when another run holds it."""
    from listener.lock import EXIT_LOCKED, LockHeld, acquire

    try:
        return acquire(config.db_path)
    except LockHeld as exc:
        click.echo(f"skipped: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None


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


def _print_summary(config: Config) -> None:
    from listener.terminal_tables import summary
    from storage.db import open_db

    db = open_db(config.db_path)
    try:
        click.echo(summary(db))
    finally:
        db.close()


@cli.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@config_option
def check_config(path: str | None, config_path: str) -> None:
    """Validate a config file (secrets must be set in the environment)."""
    from listener.pipeline import Runtime

    config = load_for_command(path or config_path)
    runtime = Runtime(config)
    problems = []
    for cfg in config.sources:
        if not cfg.enabled:
            continue
        try:  # builds the source: its library must import and its credentials be set
            runtime.build_source(cfg)
        except ListenerError as exc:
            problems.append(f"source '{cfg.name}' is not ready: {exc}")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{config.path}: {len(problems)} source(s) not ready")
    click.echo(f"{config.path}: ok — {config_counts(config)}")
    for name, why in config.disabled.items():
        click.echo(f"  destination '{name}' is off: {why}")


def config_counts(config: Config) -> str:
    """What a config sets up, in one phrase: brands, sources, rules, spikes, digests, sinks."""
    counts = [(len(config.brands), "brand(s)"), (len(config.sources), "source(s)"),
              (len(config.rules), "rule(s)"), (len(config.spikes), "spike detector(s)"),
              (len(config.digests), "digest(s)")]
    return ", ".join(f"{n} {what}" for n, what in counts) + \
        f", {len(config.destinations)} destination(s) active"


@cli.command()
@config_option
def sources(config_path: str) -> None:
    """List configured sources and whether each is ready to run."""
    from listener.core.models import utcnow
    from listener.pipeline import Runtime
    from listener.terminal_tables import table
    from storage.db import open_db, paused_until

    runtime = Runtime(load_for_command(config_path))
    db = open_db(runtime.config.db_path)
    rows = []
    for cfg in runtime.config.sources:
        try:
            runtime.build_source(cfg)
            state = "ready" if cfg.enabled else "disabled"
        except ListenerError as exc:
            state = f"NOT READY: {exc}"
        until = paused_until(db, cfg.name)
        if until is not None and until > utcnow():
            state += f", paused until {until:%Y-%m-%d %H:%M}Z (rate limit)"
        rows.append([cfg.name, cfg.type, cfg.interval, state])
    db.close()
    click.echo(table(["name", "type", "interval s", "state"], rows))


@cli.command()
@config_option
@click.option("--source", "source_name", required=True, help="Name of a configured source.")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Oldest date to pull (UTC), e.g. 2026-11-01.")
def backfill(config_path: str, source_name: str, since: object) -> None:
    """Pull a source's history back to a date, as far as its platform allows.

    Sources whose platform keeps no history to page through (file imports, RSS feeds) say so
    and exit 1 before anything is drawn or stored.
    """
    from datetime import UTC, datetime

    from tqdm import tqdm

    from listener.pipeline import Runtime
    from listener.sources import source_class
    from listener.sources.collect import backfill as pull
    from storage.db import open_db

    runtime = Runtime(load_for_command(config_path))
    cfg = next((c for c in runtime.config.sources if c.name == source_name and c.enabled), None)
    if cfg is None:
        names = ", ".join(s.name for s in runtime.config.sources) or "none"
        raise click.BadParameter(f"no enabled source '{source_name}' (configured: {names})")
    if not hasattr(source_class(cfg.type), "backfill"):
        raise click.ClickException(no_backfill(source_name, cfg.type))
    source = runtime.build_source(cfg)  # only this one: another's missing secret is no matter
    assert isinstance(since, datetime)
    db = open_db(runtime.config.db_path)
    stored = [0]
    with tqdm(unit=" posts", desc=f"backfill {source_name}") as bar:
        def progress(fetched: int, new: int) -> None:
            stored[0] += new
            bar.update(fetched)
            bar.set_postfix(new=stored[0])

        total = pull(db, source, since.replace(tzinfo=UTC), runtime.clock,
                     runtime.brands_for(cfg), progress,
                     others=tuple(runtime.config.brands.values()),
                     page_deadline=cfg.page_deadline)
    db.close()
    click.echo(f"{source_name}: {total} new post(s) since {since:%Y-%m-%d}")
    click.echo(_history_note(runtime.config))


def _history_note(config: Config) -> str:
    """What happens to history: stored, classified, counted, queued; paged only by rules that
    accept posts that old (``max_post_age_hours``, 48 by default)."""
    ages = sorted({r.max_post_age_hours for r in config.rules if r.enabled},
                  key=lambda age: float("inf") if age is None else age)
    if not ages:
        return "no alert rules: the posts are stored, scored and counted in trends"
    limits = ", ".join("any age" if a is None else f"{a:g} h" for a in ages)
    return (f"the next run scores them and counts them in trends and the queue; alert rules "
            f"page only posts younger than their max_post_age_hours ({limits}), so older "
            "history pages nobody")


# why a source type has no history to pull; any other type without `backfill` gets the default
_NO_HISTORY = {
    "file": "a file source has no history to pull: every run already imports all of its files "
            "(lines appended and files added included); to import older posts, add them to a "
            "file it reads",
    "rss": "a feed carries only its latest entries: there is no history to pull",
}


def no_backfill(name: str, type_name: str) -> str:
    """Why ``listener backfill`` cannot run on this source, and what to do instead."""
    why = _NO_HISTORY.get(type_name, f"the {type_name} platform offers no history beyond what "
                                     "every poll already fetches")
    return f"source '{name}' ({type_name}) cannot backfill: {why}"


@cli.command()
@config_option
def summary(config_path: str) -> None:
    """Print posts by source and sentiment, and alerts by rule and status."""
    _print_summary(load_for_command(config_path))


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("migrate")
@config_option
def db_migrate(config_path: str) -> None:
    """Apply pending schema migrations (exits 75 while a run holds the database)."""
    from storage.migrations import migrate
    from storage.tx import connect

    config = load_for_command(config_path)
    run_lock = _take_lock(config)
    conn = connect(config.db_path)
    try:
        applied = migrate(conn)
    finally:
        conn.close()
        run_lock.release()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@cli.group()
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

    conn = open_db(load_for_command(config_path).db_path)
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
    from storage.db import open_db
    from storage.outbox import requeue_failed

    conn = open_db(load_for_command(config_path).db_path)
    try:
        if ids:
            wanted, problems = resolve_alert_ids(conn, ids)
        else:
            wanted = [r["id"] for r in conn.query("SELECT id FROM alerts WHERE status = 'failed'")]
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
    wanted: list[str] = []
    problems: list[str] = []
    for given in dict.fromkeys(ids):  # each once, in the order given
        prefix = given.strip().lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            problems.append(f"{given!r} is not an alert id (hex digits, as `alerts list` shows)")
            continue
        # ids are lowercase hex: every id starting with the prefix sorts in [prefix, prefix+'g')
        rows = list(conn.query("SELECT id, status FROM alerts WHERE id >= ? AND id < ?"
                               " ORDER BY id LIMIT 6", [prefix, prefix + "g"]))
        if not rows:
            problems.append(f"no alert matches {given}")
        elif len(rows) > 1:
            shown = ", ".join(r["id"][:12] for r in rows[:5]) + (", …" if len(rows) > 5 else "")
            problems.append(f"{given} is ambiguous: it matches {shown}; give more of the id")
        elif rows[0]["status"] != "failed":
            problems.append(f"alert {given} is {rows[0]['status']}, not failed: nothing to retry")
        else:
            wanted.append(rows[0]["id"])
    return wanted, problems


def _register_model_commands() -> None:
    from listener import cli_model

    for name in ("score", "eval", "train"):
        command = getattr(cli_model, name, None) or getattr(cli_model, f"{name}_command", None)
        if command is not None:
            cli.add_command(command, name)


def _register_ops_commands() -> None:
    from listener import cli_ops

    for command in (cli_ops.status, cli_ops.doctor, cli_ops.metrics):
        cli.add_command(command)
    db.add_command(cli_ops.backup)


def _register_web_commands() -> None:
    from listener.web.serve import serve  # imports click only; Flask loads when it runs

    cli.add_command(serve)


def main() -> None:
    """Console-script entry point: ListenerError → one clear line and exit status 1."""
    _register_model_commands()
    _register_ops_commands()
    _register_web_commands()
    add_log_options(cli)  # the commands registered just now take them too
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub at run time
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except ListenerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # non-standalone click *returns* a raised Exit's code
        sys.exit(code)


add_log_options(cli)  # every command defined above: `listener run --log-level DEBUG`

if __name__ == "__main__":  # pragma: no cover
    main()
