"""Delivery guarantees under faults, per sink type (issue #5): nothing is lost, and a retry
duplicates only where the remote cannot recognise it.

Each sink type delivers 20 alerts from a real SQLite outbox through its real client to its fake
on 127.0.0.1, which fails about a third of the requests on a seeded schedule (5xx, 429 with
Retry-After, slow answers, resets, and the remote acting before the answer is lost); the real
dispatch loop runs on a manual clock. See :mod:`tests.alerts.delivery_matrix` for the
definitions; ``python bench/delivery_faults.py`` prints the same figures for 200 alerts per sink.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alerts.delivery_crash import crash_sink
from tests.alerts.delivery_matrix import run_sink
from tests.alerts.delivery_remotes import SINKS
from tests.e2e import NEGATIVE
from tests.fakes.faults import HTTP_KINDS, SMTP_KINDS

SEED = 7


@pytest.mark.parametrize("kind", SINKS)
def test_no_alert_is_lost_and_only_unrecognisable_retries_duplicate(
        kind: str, tmp_path: Path) -> None:
    row = run_sink(kind, alerts=12, seed=SEED, rate=0.4, workdir=tmp_path, max_attempts=3)
    assert set(row.injected) == set(SMTP_KINDS if kind == "email" else HTTP_KINDS)
    assert row.acted_lost >= 1  # the remote acted and the answer was lost: the hard case
    assert row.lost == 0
    assert row.delivered == row.alerts == 12
    if row.deduped:  # the remote (the webhook's receiver) knows the alert id
        assert row.duplicates == 0
    else:  # Slack webhooks and SMTP have nothing to look up or dedupe with
        assert row.duplicates <= row.acted_lost
    assert row.raw_duplicates <= row.acted_lost  # what reached the webhook receiver twice


@pytest.mark.parametrize("kind", ["slack-bot", "jira", "github"])
def test_retrying_a_parked_alert_looks_for_its_earlier_attempt_first(
        kind: str, tmp_path: Path) -> None:
    # Every other request: the remote acts, the connection drops; one attempt, then parked.
    only_acted = {k: int(k == "acted-hangup") for k in HTTP_KINDS}
    row = run_sink(kind, alerts=6, seed=SEED, rate=0.5, workdir=tmp_path, max_attempts=1,
                   weights=only_acted)
    assert row.parked >= 1 and row.acted_lost >= 1
    assert row.delivered == row.alerts and row.lost == 0
    assert row.duplicates == 0  # `listener alerts retry` does not post a second copy


def test_killed_between_send_and_ack_the_slack_bot_finds_its_message(tmp_path: Path) -> None:
    row = crash_sink("slack-bot", tmp_path)
    assert row.known  # the attempt was committed before the request went out
    assert row.alerts == row.delivered == len(NEGATIVE)
    assert (row.duplicates, row.lost) == (0, 0)
