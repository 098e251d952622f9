"""Issue 13: alerts a community manager can trust — once per post and destination, the most
important first, history never paged, posts about two brands counted for both.

Real SQLite, the real rules stage and dispatch, the real Slack and console sinks, the Slack fake
on 127.0.0.1. Each test names the defect it pins down; each fails on the code before the fix.
"""

from __future__ import annotations

import io
import random
import re
import threading
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.incidents import IncidentConfig
from alerts.rules import RuleConfig
from alerts.rules_stage import RulesContext, RulesOutcome, evaluate_rules
from alerts.sinks.console import ConsoleSink, ConsoleSinkConfig
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from listener.config import BrandSettings
from listener.core.models import Page, Post, Score
from listener.sources.collect import keep_for_brands
from storage import db as store
from storage import outbox
from storage.trends import Period, counts_by, total
from tests.fakes.slack import FakeSlackWebhook

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALONE = RulesContext(incidents=IncidentConfig(enabled=False))  # every post a story of its own
TWO_RULES = [
    RuleConfig.model_validate({"name": "unhappy", "when": {"sentiment": "negative"},
                               "destinations": ["slack"]}),
    RuleConfig.model_validate({"name": "needs-help", "when": {"min_urgency": 0.5},
                               "destinations": ["slack"]}),
]


def add_posts(db: Database, count: int, *, at: datetime = NOW, seed: int = 1,
              **fields: object) -> None:
    """``count`` negative, urgent posts by different authors with followers of every size."""
    rng = random.Random(seed)
    posts = [Post("x", f"{seed}-{i}", f"post {i}: something broke ({rng.random():.6f})",
                  at - timedelta(seconds=rng.randrange(600)), source="s", author=f"u{seed}-{i}",
                  author_followers=rng.choice([0, 5, 120, 4_000, 18_578, 250_000]), **fields)
             for i in range(count)]
    store.store_page(db, "s", Page(posts=posts), at)
    rows = store.posts_to_score(db, "m", "v", count + 10)
    scores = [(r.id, Score("negative", 0.9, 0.05, 0.05, round(rng.uniform(0.5, 0.99), 3),
                              "m", "v"), None) for r in rows]
    store.save_scores(db, scores, at)


def slack_sink(slack: FakeSlackWebhook) -> SlackSink:
    return SlackSink(SlackSinkConfig(type="slack", name="slack", webhook_url=slack.url,
                                     timeout=5, min_interval=0))


def test_a_post_matching_two_rules_gets_one_message_whatever_the_batch_boundaries(
    db: Database,
) -> None:
    """Issue 13 #1: 300 posts × 2 rules gave 549 Slack messages: dispatch read 100 alert rows
    at a time, ordered by (created_at, id), so one post's two alerts fell into two batches."""
    add_posts(db, 1500)
    assert evaluate_rules(db, TWO_RULES, {"slack"}, lambda: NOW, context=ALONE) == 3000
    with FakeSlackWebhook() as slack:
        result = dispatch(db, {"slack": slack_sink(slack)}, RetryPolicy(), clock=lambda: NOW,
                          strict=True)
        texts = [str(r.json) for r in slack.requests]
    assert result.delivered == 1500 and len(texts) == 1500
    assert all("unhappy, needs-help" in t or "needs-help, unhappy" in t for t in texts)
    assert db.execute("SELECT count(*) FROM alerts WHERE status != 'delivered'").fetchone() == (0,)


def test_an_interrupted_dispatch_resumes_without_splitting_a_post(db: Database) -> None:
    """The same after a stop between two messages (shutdown; a crash leaves the same state):
    what is left is still whole groups."""
    add_posts(db, 400)
    evaluate_rules(db, TWO_RULES, {"slack"}, lambda: NOW, context=ALONE)
    stop = threading.Event()
    with FakeSlackWebhook() as slack:
        sink = slack_sink(slack)
        original = sink.send

        def send_then_maybe_stop(message: object) -> str | None:
            remote = original(message)  # type: ignore[arg-type]
            if len(slack.requests) == 137:
                stop.set()
            return remote

        sink.send = send_then_maybe_stop  # type: ignore[method-assign]
        first = dispatch(db, {"slack": sink}, RetryPolicy(), clock=lambda: NOW, stop=stop)
        second = dispatch(db, {"slack": slack_sink(slack)}, RetryPolicy(), clock=lambda: NOW)
        texts = [str(r.json) for r in slack.requests]
    assert (first.delivered, first.delivered + second.delivered) == (137, 400)
    assert len(texts) == 400 and all("unhappy" in t and "needs-help" in t for t in texts)


def test_a_rule_added_later_never_messages_a_post_a_second_time(db: Database) -> None:
    """One message per post and destination: a rule (or a new model's score) that matches a
    post already messaged is not a reason to message it again."""
    add_posts(db, 3)
    evaluate_rules(db, TWO_RULES[:1], {"slack"}, lambda: NOW, context=ALONE)
    with FakeSlackWebhook() as slack:
        dispatch(db, {"slack": slack_sink(slack)}, RetryPolicy(), clock=lambda: NOW)
        db.execute("UPDATE scores SET rules_at = NULL")  # as if scored again
        assert evaluate_rules(db, TWO_RULES, {"slack"}, lambda: NOW, context=ALONE) == 0
        dispatch(db, {"slack": slack_sink(slack)}, RetryPolicy(), clock=lambda: NOW)
        assert len(slack.requests) == 3


def test_a_cap_keeps_the_highest_ranked_alerts_across_batches(db: Database) -> None:
    """Issue 13 #5: ``max_alerts`` kept the first arrivals, so on a 14-day import the post with
    urgency 0.95 and 18,578 followers was suppressed while 42 earlier ones went out."""
    add_posts(db, 400)
    capped = RuleConfig.model_validate({
        "name": "capped", "when": {}, "destinations": ["slack"],
        "max_alerts": {"count": 10, "per_seconds": 86400}})
    for _ in range(8):  # batches of 50: the best posts arrive in every batch
        evaluate_rules(db, [capped], {"slack"}, lambda: NOW, batch_size=50, context=ALONE)
    ranks = [r[0] for r in db.execute(
        "SELECT s.urgency * length(CAST(coalesce(p.author_followers, 0) AS TEXT)) FROM posts p"
        " JOIN scores s ON s.post_id = p.id ORDER BY 1 DESC")]
    kept = sorted((r[0] for r in db.execute(
        "SELECT rank FROM alerts WHERE status = 'pending'")), reverse=True)
    assert kept == ranks[:10]
    assert db.execute("SELECT count(*) FROM alerts WHERE status = 'suppressed'").fetchone() == (390,)


def test_dispatch_serves_the_most_important_alert_first(db: Database) -> None:
    """Issue 13 #5 and #8: dispatch and the console printed in creation (hash) order."""
    add_posts(db, 60)
    evaluate_rules(db, TWO_RULES[:1], {"console"} | {"slack"}, lambda: NOW, context=ALONE)
    db.execute("UPDATE alerts SET destination = 'console'")
    out = io.StringIO()
    console = ConsoleSink(ConsoleSinkConfig(type="console", name="console"), stream=out)
    dispatch(db, {"console": console}, RetryPolicy(), clock=lambda: NOW)
    printed = re.findall(r"post (\d+): something broke", out.getvalue())
    order = [str(r[0]).split("-")[1] for r in db.execute(
        "SELECT p.platform_id FROM alerts a JOIN posts p ON p.id = a.post_id"
        " ORDER BY a.rank DESC, a.created_at")]
    assert printed == order and len(printed) == 60


def test_history_is_stored_and_queued_but_never_paged(db: Database) -> None:
    """Issue 13 #6: importing last month fired per-post rules on every old post."""
    add_posts(db, 20, at=NOW - timedelta(days=30), seed=1)
    add_posts(db, 5, at=NOW - timedelta(minutes=5), seed=2)
    outcome = RulesOutcome()
    assert evaluate_rules(db, TWO_RULES, {"slack"}, lambda: NOW, context=ALONE,
                          outcome=outcome) == 10
    assert outcome.too_old == 20
    assert db.execute("SELECT count(*) FROM triage").fetchone() == (25,)  # all in the queue
    every_age = [r.model_copy(update={"name": f"{r.name}-all", "max_post_age_hours": None})
                 for r in TWO_RULES]
    db.execute("UPDATE scores SET rules_at = NULL")  # rules of any age page history too
    assert evaluate_rules(db, every_age, {"slack"}, lambda: NOW, context=ALONE) == 50


def test_max_post_age_is_configurable_and_off_with_null() -> None:
    rule = RuleConfig.model_validate({"name": "r", "destinations": ["d"],
                                      "max_post_age_hours": None})
    old = Post("x", "1", "t", NOW - timedelta(days=400))
    assert not rule.too_old(old, NOW)
    assert RuleConfig.model_validate({"name": "r", "destinations": ["d"]}).too_old(old, NOW)


# -- a post about two brands ---------------------------------------------------------------


def brand(name: str, query: str) -> object:
    return BrandSettings(name=name, query=query).compile()


def test_a_post_only_the_other_brands_query_accepts_is_kept_for_that_brand() -> None:
    """Issue 13 #2: brand A's search returned a post only B's query accepts ("#googleplus" for
    "google"); the collect stage asked only A's query and dropped it, and the source, having
    handed it out, skipped it when B's search returned it: never stored."""
    a, b = brand("google", "google"), brand("gplus", "googleplus OR #googleplus")
    found_by_a = Post("x", "1", "miss #googleplus already", NOW, brand="google")
    kept = keep_for_brands(Page([found_by_a]), [a, b]).posts
    assert [(p.brand, p.also_brands) for p in kept] == [("gplus", ())]
    both = Post("x", "2", "google killed googleplus", NOW, brand="gplus")
    assert [(p.brand, p.also_brands) for p in keep_for_brands(Page([both]), [a, b]).posts] == [
        ("gplus", ("google",))]
    # a source listening for A only keeps posts A accepts, but names every brand they are about
    only_a = keep_for_brands(Page([found_by_a, both]), [a], others=[b]).posts
    assert [(p.platform_id, p.brand, p.also_brands) for p in only_a] == [
        ("2", "google", ("gplus",))]


def test_a_post_about_two_brands_counts_for_each_in_trends_queue_and_rules(db: Database) -> None:
    posts = [Post("x", "1", "acme vs globex: both down", NOW, source="s", brand="acme",
                  also_brands=("globex",), author="ann"),
             Post("x", "2", "acme is fine", NOW, source="s", brand="acme", author="bob")]
    store.store_page(db, "s", Page(posts), NOW)
    # found again by another source's search for globex: no second post, one more brand (none)
    store.store_page(db, "t", Page([Post("x", "1", "acme vs globex: both down", NOW,
                                         brand="globex", also_brands=("acme",))]), NOW)
    rows = store.posts_to_score(db, "m", "v", 9)
    store.save_scores(db, [(r.id, Score("negative", 0.9, 0.05, 0.05, 0.9, "m", "v"), None)
                           for r in rows], NOW)
    period = Period(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    by_brand = counts_by(db, period, "hour", "brand")
    assert (by_brand["acme"].total, by_brand["globex"].total) == (2, 1)
    assert total(counts_by(db, period, "hour", "bucket")).total == 2  # once in the totals
    assert counts_by(db, period, "hour", "bucket", brand="globex")
    from storage import triage

    queue = triage.queue(db, triage.QueueFilter(brand="globex", status=None))
    assert [r["post_id"] for r in queue] == [1]
    globex_rule = RuleConfig.model_validate({"name": "globex", "when": {"brands": ["globex"]},
                                             "destinations": ["slack"]})
    assert evaluate_rules(db, [globex_rule], {"slack"}, lambda: NOW, context=ALONE) == 1
    assert outbox.due(db, NOW, 10)[0]["also_brands"] == "globex"


def test_the_next_digest_names_what_a_cap_held_back(db: Database) -> None:
    """Issue 13 #5: suppressed alerts are summarised in the next digest, "N more, top 5"."""
    from alerts.digest import DigestConfig, build_digest, latest_period

    add_posts(db, 40, brand="acme")
    capped = RuleConfig.model_validate({
        "name": "capped", "when": {}, "destinations": ["slack"],
        "max_alerts": {"count": 3, "per_seconds": 86400}})
    evaluate_rules(db, [capped], {"slack"}, lambda: NOW, context=ALONE)
    cfg = DigestConfig(name="daily", destinations=["slack"], at="13:00", chart=False)
    report = build_digest(db, cfg, "acme", latest_period(cfg, NOW + timedelta(hours=2)))
    facts = dict(report.facts)
    assert facts["Held back by alert caps"] == "37 more posts, top 5 shown below (all in the queue)"
    best = [r[0] for r in db.execute(
        "SELECT post_id FROM alerts WHERE status = 'suppressed' ORDER BY rank DESC LIMIT 5")]
    assert set(best) <= set(report.example_post_ids)
    assert report.numbers["suppressed_posts"] == 37
