"""``listener forget``: erase one person's posts on request (``--platform P --author HANDLE``),
or every post older than N days now (``--older-than-days N``, what ``storage.retention_days``
does once a day).

Erasing keeps the counts and removes the text, author, follower count, link and raw record, the
team's notes, the sentence vectors, the handle in reports and error texts; README "Personal
data" lists it all. It asks first, saying how many posts it will erase (``--yes`` does not ask),
and is written to the audit log as ``cli:<os user>`` — a person by the SHA-256 of their handle,
never the handle. It may run while the daemon does: it writes a batch of posts at a time.

Thin: the work is in :mod:`storage.privacy`.
"""

from __future__ import annotations

from datetime import timedelta

import click

from listener.commands.options import cli_actor, config_option, configured_database
from listener.core.models import utcnow
from storage import privacy


def _summary(erased: privacy.Erased) -> str:
    parts = [f"{erased.alerts:,} alert(s) stopped or blanked", f"{erased.notes:,} note(s)",
             f"{erased.vectors:,} vector(s) deleted", f"{erased.incident_members:,} incident "
             f"member(s) renamed", f"{erased.reports:,} report(s) scrubbed",
             f"{erased.replies:,} of the team's replies erased"]
    return f"erased {erased.posts:,} post(s); " + ", ".join(parts)


@click.command("forget")
@config_option
@click.option("--platform", metavar="P", help="The platform (x, reddit, bluesky …), as posts "
              "store it.")
@click.option("--author", metavar="HANDLE", help="The person's handle on that platform (any "
              "case).")
@click.option("--older-than-days", "days", type=click.IntRange(min=1), metavar="N",
              help="Instead: erase every post older than N days now (as storage.retention_days "
              "does daily; this run counts as the day's).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget(config_path: str, platform: str | None, author: str | None, days: int | None,
           yes: bool) -> None:
    """Erase a person's posts (text, author, link; the counts stay), or every post older than
    N days. Audited; README "Personal data" says what is kept."""
    now = utcnow()
    if days is not None:
        if platform or author:
            raise click.UsageError("give either --platform and --author, or --older-than-days")
        cutoff = now - timedelta(days=days)
        with configured_database(config_path) as db:
            count = privacy.count_older_than(db, cutoff)
            _confirm(yes, f"{count:,} post(s) dated before {cutoff:%Y-%m-%d %H:%M} UTC")
            erased = privacy.erase_older_than(db, cutoff, now, actor=cli_actor())
        click.echo(_summary(erased))
    elif platform and author and author.strip():
        with configured_database(config_path) as db:
            count = privacy.count_author_posts(db, platform, author)
            _confirm(yes, f"{count:,} post(s) by {author.strip()!r} on {platform}")
            erased = privacy.forget_author(db, platform, author, now, actor=cli_actor())
        click.echo(_summary(erased))
        click.echo(f"audit log: {privacy.FORGET}, author sha256 {privacy.author_digest(author)}")
    else:
        raise click.UsageError("give --platform and --author (or --older-than-days N)")
    click.echo("freed space keeps old bytes until VACUUM, and backups what they held "
               "(README: Personal data)")


def _confirm(yes: bool, what: str) -> None:
    if not yes:
        click.confirm(f"Erase {what} (text, author, link, notes; counts stay)?", abort=True)
