"""The alerts raised about a brand's time window (storage/window_alerts.py), on both engines
(``any_db``: an SQLite file, a PostgreSQL database): counts per rule and status for posts and
spike reports, and the posts a cap suppressed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage import outbox
from storage.engine import Db
from storage.reports import enqueue_report
from storage.window_alerts import (
    AlertCount,
    post_alert_counts,
    spike_alert_counts,
    suppressed_posts,
)

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=3)
NEG = Score("negative", 0.9, 0.05, 0.05, 0.7, "m", "v1")


def _stored(db: Db, *posts: Post) -> dict[str, int]:
    store.store_page(db, "src", Page(posts=list(posts)), END)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    store.save_scores(db, [(i, NEG, None) for i in ids.values()], END)
    return ids


def _post(pid: str, minutes_before_end: float, **fields: object) -> Post:
    return Post("x", pid, f"post {pid}", END - timedelta(minutes=minutes_before_end),
                **fields)  # type: ignore[arg-type]


def _alert(db: Db, post_id: int, rule: str, status: str, destination: str = "slack",
           rank: float = 0.0) -> None:
    outbox.enqueue(db, [outbox.NewAlert(rule, destination, post_id, post_id, f"x:{post_id}",
                                        status=status, rank=rank)], [], END)


def _spike(db: Db, brand: str, window_end: datetime, destinations: list[str]) -> None:
    report = Report(kind="spike", name="volume", title=f"{brand}: spike", brand=brand,
                    window_start=window_end - timedelta(hours=1), window_end=window_end)
    enqueue_report(db, report, destinations, END)


def test_post_alerts_are_counted_per_rule_and_status_for_the_brands_posts(any_db: Db) -> None:
    ids = _stored(any_db, _post("1", 10, brand="acme"), _post("2", 20, brand="acme"),
                  _post("3", 30, brand="globex", also_brands=("acme",)),
                  _post("4", 40, brand="globex"), _post("5", 300, brand="acme"))
    _alert(any_db, ids["1"], "negative", outbox.PENDING)
    _alert(any_db, ids["1"], "negative", outbox.PENDING, destination="mail")
    _alert(any_db, ids["2"], "negative", "held")
    _alert(any_db, ids["3"], "urgent", outbox.PENDING)
    _alert(any_db, ids["4"], "urgent", outbox.PENDING)  # another brand
    _alert(any_db, ids["5"], "negative", outbox.PENDING)  # before the window

    # in (rule, status) order
    assert post_alert_counts(any_db, "acme", START, END) == [
        AlertCount("negative", "held", 1), AlertCount("negative", "pending", 2),
        AlertCount("urgent", "pending", 1)]
    every = post_alert_counts(any_db, None, START, END)  # no brand: every post's alerts
    assert sum(c.alerts for c in every) == 5


def test_spike_alerts_count_when_their_window_ends_in_the_period(any_db: Db) -> None:
    _spike(any_db, "acme", END, ["slack", "mail"])  # ends at the period's end: in it
    _spike(any_db, "acme", START, ["slack"])  # ends at its start: the period before
    _spike(any_db, "globex", END - timedelta(hours=1), ["slack"])
    assert spike_alert_counts(any_db, "acme", START, END) == [AlertCount("volume", "pending", 2)]
    assert spike_alert_counts(any_db, None, START, END) == [AlertCount("volume", "pending", 3)]
    assert spike_alert_counts(any_db, "initech", START, END) == []


def test_suppressed_posts_come_most_important_first(any_db: Db) -> None:
    ids = _stored(any_db, *(_post(str(i), 10 * i, brand="acme") for i in range(1, 5)))
    _alert(any_db, ids["1"], "negative", "suppressed", rank=0.2)
    _alert(any_db, ids["2"], "negative", "suppressed", rank=0.9)
    _alert(any_db, ids["3"], "negative", "suppressed", rank=0.2)
    _alert(any_db, ids["3"], "urgent", "suppressed", rank=0.5)  # one post, its best rank
    _alert(any_db, ids["4"], "negative", outbox.PENDING, rank=1.0)  # sent: not suppressed
    assert suppressed_posts(any_db, "acme", START, END) == [ids["2"], ids["3"], ids["1"]]
    assert suppressed_posts(any_db, "globex", START, END) == []
