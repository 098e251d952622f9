"""How the fault matrix runs one source against its fake (:mod:`tests.faults._sources`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Platform:
    """How to run one source against its fake: start the fake, the source's entry under
    ``sources:`` (a YAML flow mapping, deadline and cap added by the runner), and
    ``publish(fake, number, at)``: one new post mentioning acme, newer for a larger number.
    ``env`` holds the secrets the entry names with ``{"$env": …}``."""

    name: str  # the source's name in the config (runs.target, source_state.source)
    start: Callable[[], Any]
    entry: Callable[[Any], str]
    publish: Callable[[Any, int, datetime], None]
    env: Mapping[str, str] = field(default_factory=dict)
