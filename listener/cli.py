"""The command line's entry point: the main group, its commands, and errors turned into exit
statuses. The commands themselves live in :mod:`listener.commands`, one module per group.

Only this module turns a ListenerError into an exit status; everything below raises.

Exit statuses: 0 done; 1 an error (a bad config, a stage that failed, a check that failed);
2 a usage error; 4 ``run --once`` parked alerts as failed (deliveries failed permanently);
75 another run holds the database's lock (EX_TEMPFAIL); 130 interrupted.
"""

from __future__ import annotations

import os
import sys

import click

from listener.commands import (
    alerts,
    checks,
    database,
    privacy,
    run,
    scoring,
    sources,
    status,
    training,
    users,
)
from listener.commands.options import add_log_options
from listener.core.errors import ListenerError
from listener.core.log import setup_logging
from listener.web.serve import serve  # imports click only; Flask loads when it runs


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


for _command in (
    run.run, run.summary,
    sources.sources, sources.backfill,
    checks.check_config, checks.doctor,
    status.status, status.metrics,
    database.db,
    alerts.alerts,
    scoring.score, scoring.eval_command,
    training.train,
    training.retrain,
    users.users,
    privacy.forget,
    serve,
):
    cli.add_command(_command)
add_log_options(cli)  # every command and subcommand: `listener run --log-level DEBUG`


def main() -> None:
    """Console-script entry point: ListenerError → one clear line and exit status 1."""
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
