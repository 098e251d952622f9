"""``listener db``: database maintenance, ``db migrate`` (pending schema migrations), ``db
backup`` (a consistent copy of the live database) and ``db copy`` (the SQLite database moved
into PostgreSQL).

Thin: the work is in :mod:`storage.migrations`, :mod:`storage.backup` and :mod:`storage.copy`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from listener.commands.options import config_option, load_for_command, take_lock

if TYPE_CHECKING:
    from listener.config import Config
    from storage.copy import Progress


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("migrate")
@config_option
def db_migrate(config_path: str) -> None:
    """Apply pending schema migrations (exits 75 while a run holds the database)."""
    from storage.db import migrate_database
    from storage.tx import connect

    config = load_for_command(config_path)
    run_lock = take_lock(config)
    conn = connect(config.database)
    try:
        applied = migrate_database(conn)
    finally:
        conn.close()
        if run_lock is not None:
            run_lock.release()
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@db.command("backup")
@config_option
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
def backup(config_path: str, target: str, force: bool) -> None:
    """Copy the live database to TARGET (consistent, while the daemon keeps running)."""
    from storage.backup import backup as copy

    config = load_for_command(config_path)
    if not isinstance(config.database, Path):
        raise click.ClickException("db backup copies the SQLite file; back a PostgreSQL "
                                   "database up with its own tools (pg_dump)")
    path = Path(target)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    size = copy(config.database, path)
    click.echo(f"backed up {config.database} to {path} ({size / 2**20:.1f} MiB)")


@db.command("copy")
@config_option
@click.option("--to", "url", metavar="URL", help="The PostgreSQL database to fill: "
              "postgresql://user@host/db (empty, or a copy to --resume).")
@click.option("--to-env", "url_env", metavar="NAME", help="Read that URL from the environment "
              "variable NAME instead, so a password never sits in the shell's history.")
@click.option("--resume", is_flag=True, help="Continue a copy that stopped half way (it "
              "goes on where it stopped; nothing is copied twice).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Rows per transaction (and per step of --resume).")
def copy(config_path: str, url: str | None, url_env: str | None, resume: bool,
         chunk_rows: int) -> None:
    """Copy the SQLite database (storage.path) into PostgreSQL, verified.

    Stop the daemon and cron runs first (a run holding the database makes this exit 75). Every
    table comes over with its ids, rollups and triage queue as they are; row counts are then
    compared table by table. Afterwards point storage.url at the database and start the
    workers (README: Scaling out).
    """
    from listener.core.log import redact
    from listener.lock import EXIT_LOCKED, LockHeld, acquire
    from storage.copy import CopyError, copy_database
    from storage.postgres import is_url

    target = _copy_target(url, url_env)
    config = load_for_command(config_path)
    source = config.base_dir / config.storage.path
    if not source.is_file():
        raise click.ClickException(f"no SQLite database at {source}: nothing to copy (check "
                                   "storage.path in the config)")
    if not is_url(target):
        raise click.ClickException("the target must be a postgresql:// URL")
    try:
        run_lock = acquire(source)
    except LockHeld as exc:
        click.echo(f"refused: {exc}; stop the daemon and cron runs, then copy", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None
    try:
        with _progress_bar(config) as progress:
            result = copy_database(source, target, resume=resume, chunk_rows=chunk_rows,
                                   progress=progress)
    except CopyError as exc:
        raise click.ClickException(redact(str(exc))) from None
    except KeyboardInterrupt:
        click.echo("interrupted: what was copied is kept; run the same command with --resume "
                   "to go on", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        run_lock.release()
    rows = sum(result.tables.values())
    click.echo(f"copied {source} to {redact(target)}: {rows:,} rows in {len(result.tables)} "
               f"tables, {result.seconds:.1f} s{' (resumed)' if result.resumed else ''}; "
               "row counts verified table by table")
    for name, count in result.tables.items():
        click.echo(f"  {name:<20} {count:>12,}")
    click.echo("next: set storage.url to this database in the config and start the workers")


def _copy_target(url: str | None, url_env: str | None) -> str:
    """The target URL, from --to or from the variable --to-env names."""
    if (url is None) == (url_env is None):
        raise click.UsageError("give the target with --to URL or --to-env NAME (one of them)")
    if url is not None:
        return url
    assert url_env is not None
    value = os.environ.get(url_env)
    if not value:
        raise click.UsageError(f"the environment variable {url_env} is not set")
    return value


@contextmanager
def _progress_bar(config: Config) -> Iterator[Progress | None]:
    """``db copy``'s progress bar on stderr where a person watches (a terminal, text logs:
    :func:`listener.progress.wanted`, as for ``run --once``); None otherwise."""
    from listener.progress import wanted

    ctx = click.get_current_context(silent=True)
    options = ctx.find_root().obj if ctx is not None else None
    given = options.get("log_format") if isinstance(options, dict) else None
    if not wanted(sys.stderr, given or config.log.format):
        yield None
        return
    from tqdm import tqdm

    bars: list[tqdm[object]] = []  # drawn from the first report on, when the total is known

    def progress(table: str, done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=done, unit=" rows", file=sys.stderr))
        bars[0].n = done
        bars[0].set_description(f"copy {table}", refresh=False)
        bars[0].refresh()

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()
