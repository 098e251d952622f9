"""What one ``listener run`` process is among many: its id, its stages, what it leases.

On SQLite one process does everything (the run lock, :mod:`listener.lock`). On PostgreSQL any
number of processes on any number of machines share the database; each runs the stages given
to ``--stages`` and claims its work through leases (:mod:`storage.leases`): a source is polled
by one worker at a time (``source:<name>``), rules and reports run once per period, not once per
worker (``stage:rules``, ``stage:reports``), classify claims the posts it scores and dispatch
the alerts it sends. A lease lasts a few minutes and is renewed while the work goes on, so a
worker that dies holds nothing for long.
"""

from __future__ import annotations

import os
import socket
import time

STAGES = ("collect", "classify", "rules", "dispatch", "reports")
"""Every stage, in pipeline order: the default of ``--stages``."""

LEASE_SECONDS = 300.0
"""How long a lease lasts without renewal: longer than any pause between two beats of a
working stage (a page, a batch, a message), short enough that a dead worker's work is taken
over within minutes."""


QUIET_AFTER = 120.0
"""Seconds without a heartbeat (every 30 s) after which a worker counts as gone: shown QUIET by
`listener status`, and the runs it left open are closed by the workers still alive."""


def parse_stages(text: str) -> frozenset[str]:
    """``collect,classify`` → the stages; unknown names are a clear error, not ignored."""
    given = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in given if s not in STAGES]
    if unknown or not given:
        raise ValueError(f"unknown stage(s) {', '.join(unknown) or '(none given)'}: "
                         f"choose among {', '.join(STAGES)}")
    return frozenset(given)


def worker_id() -> str:
    """``host:pid:start`` — unique across machines and restarts (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
