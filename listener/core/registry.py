"""Lazy plugin lookup shared by sources and sinks.

A registry is a plain dict of ``"name": "module:Class"`` strings: adding a source or a sink is one
file plus one line, and nothing is imported until a config actually names it (so a missing
optional library only matters to the users who configure that integration).
"""

from __future__ import annotations

import importlib
from typing import Any

from listener.core.errors import ConfigError, MissingDependency


def load_plugin(registry: dict[str, str], kind: str, name: str) -> Any:
    """Import and return the class registered as ``name``; unknown names list the valid ones."""
    target = registry.get(name)
    if target is None:
        valid = ", ".join(sorted(registry))
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
