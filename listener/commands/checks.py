"""``listener check-config`` (a config file, and that each enabled source can be built) and
``listener doctor`` (config, database, network, credentials and model, one line per check).

Thin: the work is in :mod:`listener.config`, :mod:`listener.pipeline` and :mod:`listener.doctor`.
"""

from __future__ import annotations

import click

from listener.commands.options import config_option, load_for_command
from listener.config import Config
from listener.core.errors import ListenerError


@click.command("check-config")
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


@click.command()
@config_option
@click.option("--no-model", is_flag=True, help="Skip loading the model (faster).")
def doctor(config_path: str, no_model: bool) -> None:
    """Check config, database, every source's and destination's network (DNS, TCP, TLS) and
    credentials (nothing sent), and the model; exit 1 if any failed."""
    from listener.doctor import FAIL, diagnose, header

    config = load_for_command(config_path)  # a bad config raises ConfigError: file, line and key
    click.echo(header(config))
    failed = 0
    for check in diagnose(config, model=not no_model):
        click.echo(check.line())
        failed += check.outcome == FAIL
    if failed:
        raise click.ClickException(f"{failed} check(s) failed")
