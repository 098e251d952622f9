"""The short crash run of `make test`: 10 seeded SIGKILLs of the real daemon, then the count.

The long run is a command: ``python -m tests.crash.harness --kills 120 --seed 7``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.harness import Harness

pytestmark = pytest.mark.slow  # make test-fast leaves it out

KILLS = 10


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
