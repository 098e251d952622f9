"""The command line. Thin: parse options, call library functions, turn errors into messages.

Only this module turns a ListenerError into an exit status; everything below raises.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from listener.config import Config, load_config
from listener.errors import ListenerError
from listener.log import setup_logging

if TYPE_CHECKING:
    from listener.lock import RunLock
    from listener.pipeline import Runtime

DEFAULT_CONFIG = "config.yaml"
config_option = click.option(
    "--config", "-c", "config_path", envvar="LISTENER_CONFIG", default=DEFAULT_CONFIG,
    show_default=True, type=click.Path(dir_okay=False), help="YAML config file.",
)


def _load(path: str) -> Config:
    config = load_config(path)
    ctx = click.get_current_context(silent=True)  # None when called outside a command
    options = ctx.find_root().obj if ctx is not None else None
    if isinstance(options, dict) and options.get("log_format") is None:
        setup_logging(options["log_level"], config.log.format)  # the config's log.format
    return config


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
    exits at once with status 75 (EX_TEMPFAIL) and does nothing.
    """
    from listener.pipeline import Runtime

    config = _load(config_path)
    run_lock = _take_lock(config)
    try:
        ok = _run_locked(Runtime(config), once)
    finally:
        run_lock.release()
    if summary and once:
        _print_summary(config)
    if not ok:
        raise click.ClickException("a stage failed; see the log above (the next run retries it)")


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
    from listener.report import summary
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

    config = _load(path or config_path)
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
    click.echo(
        f"{config.path}: ok — {len(config.sources)} source(s), {len(config.rules)} rule(s), "
        f"{len(config.destinations)} destination(s) active"
    )
    for name, why in config.disabled.items():
        click.echo(f"  destination '{name}' is off: {why}")


@cli.command()
@config_option
def sources(config_path: str) -> None:
    """List configured sources and whether each is ready to run."""
    from listener.models import utcnow
    from listener.pipeline import Runtime
    from listener.report import table
    from storage.db import open_db, paused_until

    runtime = Runtime(_load(config_path))
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
    """Pull a source's history back to a date, as far as its platform allows."""
    from datetime import UTC, datetime

    from tqdm import tqdm

    from listener.pipeline import Runtime
    from listener.pipeline import backfill as pull
    from storage.db import open_db

    runtime = Runtime(_load(config_path))
    source = next((s for s in runtime.sources() if s.name == source_name), None)
    if source is None:
        names = ", ".join(s.name for s in runtime.config.sources) or "none"
        raise click.BadParameter(f"no enabled source '{source_name}' (configured: {names})")
    assert isinstance(since, datetime)
    cfg = next(c for c in runtime.config.sources if c.name == source_name)
    db = open_db(runtime.config.db_path)
    stored = [0]
    with tqdm(unit=" posts", desc=f"backfill {source_name}") as bar:
        def progress(fetched: int, new: int) -> None:
            stored[0] += new
            bar.update(fetched)
            bar.set_postfix(new=stored[0])

        total = pull(db, source, since.replace(tzinfo=UTC), runtime.clock,
                     runtime.brands_for(cfg), progress)
    db.close()
    click.echo(f"{source_name}: {total} new post(s) since {since:%Y-%m-%d}")


@cli.command()
@config_option
def summary(config_path: str) -> None:
    """Print posts by source and sentiment, and alerts by rule and status."""
    _print_summary(_load(config_path))


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("migrate")
@config_option
def db_migrate(config_path: str) -> None:
    """Apply pending schema migrations (exits 75 while a run holds the database)."""
    from storage.migrations import migrate
    from storage.tx import connect

    config = _load(config_path)
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
@click.option("--limit", default=50, show_default=True)
def alerts_list(config_path: str, status: str | None, limit: int) -> None:
    """Show alerts with their delivery status and last error."""
    from listener.report import table
    from storage.db import open_db

    conn = open_db(_load(config_path).db_path)
    sql = ("SELECT id, rule, destination, status, attempts, coalesce(last_error, '') AS error"
           " FROM alerts WHERE (? IS NULL OR status = ?) ORDER BY created_at DESC LIMIT ?")
    rows = [[r["id"][:12], r["rule"], r["destination"], r["status"], r["attempts"],
             r["error"][:60]] for r in conn.query(sql, [status, status, limit])]
    conn.close()
    click.echo(table(["id", "rule", "destination", "status", "attempts", "last error"], rows))


@alerts.command("retry")
@config_option
@click.argument("ids", nargs=-1)
def alerts_retry(config_path: str, ids: tuple[str, ...]) -> None:
    """Re-queue parked (failed) alerts: all of them, or the given ids."""
    from listener.models import utcnow
    from storage.db import open_db
    from storage.outbox import requeue_failed

    conn = open_db(_load(config_path).db_path)
    full = [r["id"] for r in conn.query("SELECT id FROM alerts WHERE status = 'failed'")
            if not ids or any(r["id"].startswith(i) for i in ids)]
    count = requeue_failed(conn, utcnow(), full) if full else 0
    conn.close()
    click.echo(f"re-queued {count} alert(s)")


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


if __name__ == "__main__":  # pragma: no cover
    main()
