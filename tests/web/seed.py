"""A small, deterministic dashboard database filled through the storage verbs the daemon uses.

Two weeks of posts for two brands on three sources in three languages, with a burst of
negative posts two days before NOW (and the spike report that names it), alerts of every
delivery status including a parked failure, and a few hostile posts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage import feedback, outbox
from storage.reports import enqueue_report

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SPIKE_START = NOW - timedelta(hours=50)
BACKGROUND = 1000
MODEL, VERSION = "default", "v1"
SOURCES = (("x-main", "x", "en"), ("reddit", "reddit", "de"), ("appstore", "appstore", "fr"))
NEGATIVE = ("my refund never arrived and support ignores me", "the login is broken again",
            "charged twice this month, I want my money back", "outage all morning, nothing loads")
NEUTRAL = ("does the new plan include exports?", "moving our team over next week")
POSITIVE = ("love the new dashboard, great work", "support fixed it in minutes, thank you")
HOSTILE = {
    "script": "<script>window.pwned = 1</script> refund please",
    "img": '<img src=x onerror="window.pwned = 1"> broken login',
    "link": "click <a href=\"javascript:window.pwned = 1\">here</a> for a refund",
}
JS_URL = "javascript:window.pwned=1"


@dataclass(frozen=True)
class Seeded:
    """Ids a test needs: posts by role, the parked alert, the hostile posts."""

    hostile: dict[str, int]
    failed_alert: str
    top_post: int  # the first row of the default queue


def _post(n: int, when: datetime, brand: str, source: tuple[str, str, str], text: str,
          followers: int, url: str | None = None) -> Post:
    name, platform, lang = source
    return Post(platform=platform, platform_id=f"p{n}", text=text, created_at=when, source=name,
                brand=brand, lang=lang, author=f"user{n}", author_followers=followers,
                url=url or f"https://{platform}.example/status/{n}")


def _score(text: str, rng: random.Random) -> Score:
    if text in NEGATIVE or "refund" in text or "broken" in text:
        return Score("negative", 0.85, 0.1, 0.05, round(rng.uniform(0.5, 0.95), 3), MODEL, VERSION)
    if text in POSITIVE:
        return Score("positive", 0.03, 0.07, 0.9, round(rng.uniform(0.0, 0.2), 3), MODEL, VERSION)
    return Score("neutral", 0.1, 0.8, 0.1, round(rng.uniform(0.1, 0.6), 3), MODEL, VERSION)


def seed(path: Path) -> Seeded:
    """Fill a fresh database at ``path``; returns the ids tests refer to."""
    rng = random.Random(7)
    db = store.open_db(path)
    posts: list[Post] = []
    for n in range(BACKGROUND):  # two weeks, one post every 20 minutes, mixed sentiment
        when = NOW - timedelta(minutes=20 * n + 5)
        text = rng.choice((*NEGATIVE, *NEUTRAL, *NEUTRAL, *POSITIVE, *POSITIVE))
        posts.append(_post(n, when, rng.choice(("acme", "acme", "globex")), rng.choice(SOURCES),
                           f"{text} #{n}", rng.choice((0, 40, 900, 25_000))))
    for n in range(BACKGROUND, BACKGROUND + 40):  # the burst: 40 negative posts in an hour
        when = SPIKE_START + timedelta(minutes=n - BACKGROUND)
        posts.append(_post(n, when, "acme", SOURCES[0], f"outage all morning, nothing loads #{n}",
                           120))
    hostile = [(role, _post(BACKGROUND + 100 + i, NOW - timedelta(hours=2 + i), "acme",
                            SOURCES[0], text, 5_000_000, JS_URL))
               for i, (role, text) in enumerate(HOSTILE.items())]
    posts += [p for _, p in hostile]
    store.store_page(db, "seed", Page(posts=posts), NOW)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    store.save_scores(db, [(ids[p.platform_id], _score(p.text.split(" #")[0], rng), p.lang)
                           for p in posts], NOW)
    failed = _alerts(db, ids)
    _reviews(db, rng)
    enqueue_report(db, Report(kind="spike", name="volume", brand="acme", source="x-main",
                              title="acme on x-main: 40 posts in an hour (usual 2)",
                              summary="20x the usual volume, 100 % negative",
                              terms=("outage", "morning", "loads"),
                              window_start=SPIKE_START, window_end=SPIKE_START + timedelta(hours=1)),
                   ["support-slack"], NOW)
    top = db.execute("SELECT post_id FROM triage ORDER BY rank DESC, created_at DESC").fetchone()
    db.close()
    return Seeded(hostile={role: ids[p.platform_id] for role, p in hostile},
                  failed_alert=failed, top_post=int(top[0]))


def _alerts(db: Database, ids: dict[str, int]) -> str:
    """Alerts for some negative posts: delivered, pending and one parked failure."""
    rows = list(db.query("SELECT t.post_id, t.score_id, p.platform, p.platform_id FROM triage t"
                         " JOIN posts p ON p.id = t.post_id ORDER BY t.post_id LIMIT 6"))
    new = [outbox.NewAlert(rule="unhappy", destination=dest, post_id=r["post_id"],
                           score_id=r["score_id"], post_key=f"{r['platform']}:{r['platform_id']}")
           for r in rows for dest in ("support-slack", "zendesk")]
    outbox.enqueue(db, new, [], NOW)
    alert_ids = [r["id"] for r in db.query("SELECT id FROM alerts ORDER BY created_at, id")]
    outbox.record_delivered(db, alert_ids[0], 1, "1700000000.0001", NOW, 120.0)
    outbox.record_failure(db, alert_ids[1], 8, NOW, error="404 channel_not_found <b>bold</b>",
                          status_code=404, retry_at=None, ms=80.0)
    return alert_ids[1]


def _reviews(db: Database, rng: random.Random) -> None:
    """Two weeks of reviews: a third of them say the model was wrong."""
    rows = list(db.query("SELECT post_id, sentiment FROM triage ORDER BY post_id LIMIT 40"))
    for i, row in enumerate(rows):
        when = NOW - timedelta(days=13 - i // 3, hours=1)
        wrong = i % 3 == 0
        label = "positive" if wrong else row["sentiment"]  # triage never holds positives
        feedback.add_feedback(db, row["post_id"], "sentiment", label, "seed", when)
        urgent = "not_complaint" if rng.random() < 0.25 else "complaint"
        feedback.add_feedback(db, row["post_id"], "urgency", urgent, "seed", when)
