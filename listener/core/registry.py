"""Lazy plugin lookup shared by sources and sinks.

A registry is a plain dict of ``"name": "module:Class"`` strings: adding a source or a sink is one
file plus one line, and nothing is imported until a config actually names it (so a missing
optional library only matters to the users who configure that integration).

Other packages add their own through entry points, in the groups ``listener.sources`` and
``listener.sinks`` (``[project.entry-points."listener.sinks"] discord = "pkg.mod:Class"``): the
same ``module:Class`` form, found by :mod:`importlib.metadata` among the installed packages.
A built-in name always wins, so installing a package can never replace a bundled integration.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from listener.core.errors import ConfigError, MissingDependency


def plugins(registry: dict[str, str], group: str | None) -> dict[str, str]:
    """The built-in registry plus the entry points installed packages declare in ``group``."""
    found = {ep.name: ep.value for ep in metadata.entry_points(group=group)} if group else {}
    return {**found, **registry}


def load_plugin(registry: dict[str, str], kind: str, name: str, group: str | None = None) -> Any:
    """Import and return the class registered as ``name`` (built in, or an entry point of
    ``group``); unknown names list the valid ones."""
    known = registry if name in registry else plugins(registry, group)
    target = known.get(name)
    if target is None:
        valid = ", ".join(sorted(known))
        raise ConfigError(f"unknown {kind} type '{name}'; valid types are: {valid}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not module_name.startswith(exc.name):
            # the plugin exists but its optional library is not installed
            raise MissingDependency(exc.name, name) from exc
        raise
    return getattr(module, attr)
