"""What the commands share: the ``--config`` option, the model commands' ``--model``,
``--device`` and ``--backend``, the logging options a subcommand accepts too, and loading the
config and taking the run lock the way a command does.

Apart from the command modules so that they, and :mod:`listener.cli`, import these from below
instead of from each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from listener.config import Config, load_config
from listener.core.log import setup_logging

if TYPE_CHECKING:
    from listener.lock import RunLock
    from storage.engine import Db

DEFAULT_CONFIG = "config.yaml"
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
config_option = click.option(
    "--config", "-c", "config_path", envvar="LISTENER_CONFIG", default=DEFAULT_CONFIG,
    show_default=True, type=click.Path(dir_okay=False), help="YAML config file.",
)

# the model commands' (score, eval, train)
model_option = click.option(
    "--model", "model", default="default", show_default=True, help="Model to load."
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda."
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="onnx: the default model on ONNX Runtime, int8, CPU; the first use exports the encoder "
    "into $LISTENER_CACHE_DIR/onnx (default ~/.cache/listener/onnx). auto: onnx for the "
    "default model unless the machine has an NVIDIA GPU, else torch.",
)


def _log_option_given(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--log-level``/``--log-format`` after the subcommand: update the logging set-up the group
    made (from its own options and the environment) as soon as the option is parsed."""
    if value is None or param.name is None:
        return
    root = ctx.find_root()
    if not isinstance(root.obj, dict):  # a subcommand invoked on its own (tests)
        root.obj = {"log_level": "INFO", "log_format": None}
    root.obj[param.name] = value
    setup_logging(root.obj["log_level"], "json" if root.obj["log_format"] == "json" else "text")


def _log_options() -> list[click.Option]:
    """The group's logging options, for every subcommand too (no env vars: the group reads
    those; no defaults: an option not given leaves the group's choice alone)."""
    common = {"default": None, "expose_value": False, "callback": _log_option_given}
    return [
        click.Option(["--log-level", "log_level"], **common,
                     type=click.Choice(LOG_LEVELS, case_sensitive=False),
                     help="Same as before the command: DEBUG, INFO, WARNING or ERROR."),
        click.Option(["--log-format", "log_format"], **common,
                     type=click.Choice(["text", "json"]),
                     help="Same as before the command: text or json."),
    ]


def add_log_options(command: click.Command) -> None:
    """Accept ``--log-level``/``--log-format`` after this command and each of its subcommands,
    so ``listener run --log-level DEBUG`` works like ``listener --log-level DEBUG run``."""
    names = {name for param in command.params for name in getattr(param, "opts", [])}
    if "--log-level" not in names:
        command.params.extend(_log_options())
    for sub in getattr(command, "commands", {}).values():
        add_log_options(sub)


def load_for_command(path: str) -> Config:
    """The config; logs switch to its ``log.format`` unless one was given on the command line."""
    config = load_config(path)
    ctx = click.get_current_context(silent=True)  # None when called outside a command
    options = ctx.find_root().obj if ctx is not None else None
    if isinstance(options, dict) and options.get("log_format") is None:
        setup_logging(options["log_level"], config.log.format)  # the config's log.format
    return config


def take_lock(config: Config) -> RunLock | None:
    """The SQLite database's run lock, or exit 75 (EX_TEMPFAIL) at once when another run holds
    it; None on PostgreSQL, where any number of workers run side by side."""
    from listener.lock import EXIT_LOCKED, LockHeld, acquire

    if not isinstance(config.database, Path):
        return None
    try:
        return acquire(config.database)
    except LockHeld as exc:
        click.echo(f"skipped: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None


def cli_actor() -> str:
    """``cli:<os user>``: the audit log's name for whoever ran the command."""
    import getpass
    import os

    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the password file
        who = f"uid-{os.getuid()}"
    return f"cli:{who}"


@contextmanager
def configured_database(config_path: str) -> Iterator[Db]:
    """The configured database, migrated (a command may be the first to need a new table),
    closed afterwards."""
    from storage.db import open_db

    conn = open_db(load_for_command(config_path).database)
    try:
        yield conn
    finally:
        conn.close()
