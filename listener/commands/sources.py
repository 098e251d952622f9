"""``listener sources`` (each configured source and whether it is ready) and ``listener
backfill`` (a source's history back to a date).

Thin: the work is in :mod:`listener.sources` and :mod:`listener.sources.collect`.
"""

from __future__ import annotations

import click

from listener.commands.options import config_option, load_for_command
from listener.config import Config
from listener.core.errors import ListenerError


@click.command()
@config_option
def sources(config_path: str) -> None:
    """List configured sources and whether each is ready to run."""
    from listener.core.models import utcnow
    from listener.pipeline import Runtime
    from listener.terminal_tables import table
    from storage.db import open_db
    from storage.source_pauses import paused_until

    runtime = Runtime(load_for_command(config_path))
    db = open_db(runtime.config.database)
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


@click.command()
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
    db = open_db(runtime.config.database)
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
