"""The short crash runs of `make test`: seeded SIGKILLs of the real daemon, then the count.

The long runs are commands: ``python -m tests.crash.harness --kills 120 --seed 7`` (SQLite, one
daemon) and ``python -m tests.crash.harness --postgresql --workers 4 --kills 100 --seed 7``
(several workers sharing a PostgreSQL database, one killed at a time).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.harness import Harness
from tests.crash.pg_harness import PgHarness
from tests.pg_server import Server

pytestmark = pytest.mark.slow  # make test-fast leaves it out

KILLS = 10
PG_WORKERS, PG_KILLS = 2, 8


def test_ten_sigkills_lose_no_post_and_no_alert_and_duplicate_no_ticket(tmp_path: Path) -> None:
    lines: list[str] = []
    with Harness(tmp_path, seed=7, say=lines.append) as harness:
        totals = harness.run(KILLS)
        report = harness.report(totals)
    print("\n".join(lines), report, sep="\n")  # shown by pytest -rP, and on failure
    assert len(harness.kills) == KILLS
    assert totals.created > 10 and totals.slack.expected > 0  # the daemon did real work
    assert totals.posts_lost == [] and totals.posts_duplicated == 0, report
    assert totals.unscored == totals.unevaluated == 0, report
    assert totals.slack.lost == [] and totals.slack.unexpected == 0, report
    assert totals.tickets is not None
    assert totals.tickets.lost == [] and totals.tickets.unexpected == 0, report
    assert totals.tickets.duplicates == 0, report  # Zendesk's idempotency key + lookup
    assert totals.ok
    assert harness.tracebacks() == 0, report  # no stage failed with a bug along the way


def test_workers_on_postgresql_sigkilled_in_turn_lose_nothing_and_duplicate_no_ticket(
    tmp_path: Path, pg_server: Server,
) -> None:
    """Issue 17: two workers share a PostgreSQL database; one at a time is SIGKILLed at an
    aimed moment and restarted while the other works on. Nothing lost, no ticket twice, no
    traceback, and a clean stop leaves no lease behind."""
    lines: list[str] = []
    with PgHarness(tmp_path, seed=7, url=pg_server.new_database(), workers=PG_WORKERS,
                   say=lines.append) as harness:
        totals = harness.run(PG_KILLS)
        report = harness.report(totals)
    print("\n".join(lines), report, sep="\n")
    assert len(harness.kills) == PG_KILLS
    assert totals.created > 10 and totals.slack.expected > 0
    assert totals.posts_lost == [] and totals.posts_duplicated == 0, report
    assert totals.unscored == totals.unevaluated == 0, report
    assert totals.slack.lost == [] and totals.slack.unexpected == 0, report
    assert totals.tickets is not None
    assert totals.tickets.lost == [] and totals.tickets.unexpected == 0, report
    assert totals.tickets.duplicates == 0, report
    assert totals.workers is not None and totals.workers.stopped == PG_WORKERS, report
    assert totals.workers.leases_of_stopped == 0, report  # a clean stop frees everything
    assert totals.ok
    assert harness.tracebacks() == 0, report
