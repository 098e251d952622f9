"""``listener db``: database maintenance, ``db migrate`` (pending schema migrations) and
``db backup`` (a consistent copy of the live database).

Thin: the work is in :mod:`storage.migrations` and :mod:`storage.backup`.
"""

from __future__ import annotations

from pathlib import Path

import click

from listener.commands.options import config_option, load_for_command, take_lock


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
