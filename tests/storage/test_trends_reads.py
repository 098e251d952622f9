"""storage/trends.py's reads for issue 18's overview, on both engines: per-brand and per-source
counts of an hourly view taken from whole days plus edge hours, and the texts top terms and
found spikes compare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listener.core.models import Page, Post, Score
from storage import db as store
from storage.engine import Db
from storage.trends import Period, _read, bucket_keys, counts_by, post_texts

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _stored(db: Db) -> None:
    posts, sentiments = [], []
    for n in range(120):  # five days, a post every hour, three brands, two sources
        posts.append(Post("x", f"p{n}", f"post {n} about {'refunds' if n % 4 else 'praise'}",
                          NOW - timedelta(hours=n, minutes=7), source=("x", "reddit")[n % 2],
                          brand=("acme", "globex", "initech")[n % 3], lang="en"))
        sentiments.append("negative" if n % 4 else "positive")
    store.store_page(db, "import", Page(posts=posts), NOW)
    ids = dict(db.execute("SELECT platform_id, id FROM posts").fetchall())
    store.save_scores(db, [(ids[p.platform_id], Score(s, 0.8, 0.1, 0.1, 0.3, "m", "1"), "en")
                           for p, s in zip(posts, sentiments, strict=True)], NOW)


def test_brand_and_source_counts_per_hour_read_whole_days_alike(any_db: Db) -> None:
    _stored(any_db)
    for period in (Period.ending(NOW, 96), Period.ending(NOW, 30), Period.ending(NOW, 5),
                   Period(NOW - timedelta(days=4), NOW - timedelta(days=1))):
        for group in ("brand", "source"):
            for brand in (None, "acme"):
                quick = counts_by(any_db, period, "hour", group, brand)
                assert quick == _read(any_db, period, "hour", group, brand, None), (period, group)
    assert sum(c.total for c in counts_by(any_db, Period.ending(NOW, 96), "hour",
                                          "brand").values()) == 95  # 11:53 back to 13:00 - 96h


def test_post_texts_sample_newest_first_and_leave_negatives_out(any_db: Db) -> None:
    _stored(any_db)
    week = Period.ending(NOW, 168)
    texts = post_texts(any_db, week, sample=5)
    assert texts == [f"post {n} about {'refunds' if n % 4 else 'praise'}" for n in range(5)]
    others = post_texts(any_db, week, sample=1000, negative=False)
    assert len(others) == 30 and all("praise" in t for t in others)
    assert all(int(t.split()[1]) % 3 == 0 for t in post_texts(any_db, week, "acme", "x"))
    assert len(post_texts(any_db, week, "acme", "x")) == 20


def test_bucket_keys_walk_days_for_daily_periods_and_hours_otherwise() -> None:
    days = Period(datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    assert len(bucket_keys(days, "day")) == 112 and bucket_keys(days, "week")[0] == "2026-07-27"
    odd = Period(datetime(2026, 11, 19, 10, tzinfo=UTC), datetime(2026, 11, 21, 5, tzinfo=UTC))
    assert bucket_keys(odd, "day") == ["2026-11-19", "2026-11-20", "2026-11-21"]
