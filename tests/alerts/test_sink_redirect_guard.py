"""Issue 14 #8 for sinks whose client follows redirects on its own: slack_sdk opens every request
with urllib's default opener, which follows a 302 — to the cloud metadata service or to another
port of this machine. Dispatch keeps every attempt inside :func:`listener.core.netguard.only_to`:
the destination's configured hosts, and public addresses, nothing else.

The real Slack sink (webhook and bot token) and the real dispatch stage, against a fake that
redirects and a recorder that must never be reached.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from listener.core.models import Page, Post, Score
from listener.core.netguard import endpoints, forbidden, only_to
from storage import db as store
from storage import outbox
from tests.fakes.hostile import Recorder, Redirector
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def one_alert(db: Database) -> None:
    store.store_page(db, "s", Page([Post("x", "1", "acme ate my order", NOW, author="ann")]), NOW)
    [row] = store.posts_to_score(db, "m", "v", 5)
    store.save_scores(db, [(row.id, Score("negative", 0.9, 0.05, 0.05, 0.9, "m", "v"), None)],
                      NOW)
    [scored] = store.scores_to_evaluate(db, 5)
    outbox.enqueue(db, [outbox.NewAlert("r", "slack", scored.post_id, scored.score_id, "x:1")],
                   [scored.score_id], NOW)


@pytest.mark.parametrize("mode", ["webhook", "bot"])
@pytest.mark.parametrize("target", ["loopback", "metadata"])
def test_a_redirect_to_a_private_address_is_refused_whatever_the_client(
    db: Database, mode: str, target: str
) -> None:
    one_alert(db)
    with Recorder() as elsewhere:
        to = (f"{elsewhere.base_url}/steal" if target == "loopback"
              else "http://169.254.169.254/latest/meta-data/")
        with Redirector(to) as redirector:
            settings = (SlackSinkConfig(type="slack", name="slack", timeout=3, min_interval=0,
                                        webhook_url=f"{redirector.base_url}/services/T/B/X")
                        if mode == "webhook" else
                        SlackSinkConfig(type="slack", name="slack", timeout=3, min_interval=0,
                                        token=BOT_TOKEN, channel=CHANNEL_ID,
                                        base_url=redirector.base_url))
            started = time.monotonic()
            result = dispatch(db, {"slack": SlackSink(settings)}, RetryPolicy(),
                              clock=lambda: NOW, endpoints=endpoints(settings))
            took = time.monotonic() - started
            assert len(redirector.requests) == 1  # Slack's host was asked ...
        assert elsewhere.requests == []  # ... the redirect's target never
    assert result.retried == 1 and took < 3  # refused at once, not a timeout towards 169.254
    error = db.execute("SELECT last_error FROM alerts").fetchone()[0]
    assert "refused to connect" in error and "private or local address" in error


def test_configured_private_hosts_stay_reachable_and_public_ones_are_never_judged() -> None:
    assert forbidden("169.254.169.254") and forbidden("10.1.2.3") and forbidden("::ffff:127.0.0.1")
    assert not forbidden("8.8.8.8") and not forbidden("2606:4700:4700::1111")
    with Recorder() as intranet:
        import httpx

        settings = SlackSinkConfig(type="slack", name="s", webhook_url=f"{intranet.base_url}/h")
        with only_to(endpoints(settings), "destination s"):
            assert httpx.get(f"{intranet.base_url}/ok").status_code == 200
        with only_to([], "destination s"), pytest.raises(httpx.ConnectError, match="refused"):
            httpx.get(f"{intranet.base_url}/ok")
        with only_to([], "destination s", allow_private=True):
            assert httpx.get(f"{intranet.base_url}/ok").status_code == 200
