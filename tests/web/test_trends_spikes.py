"""Issue 18 #1: the overview finds spikes in the history it shows, not only live ones.

Posts go in through the storage verbs an import or backfill uses (``store_page``,
``save_scores``); no detector ever runs, so ``reports`` holds no spike. Before, the Spikes card
said 0 beside an obvious 6x day.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from listener.core.models import Page, Post, Report, Score
from listener.web.overview_data import overview
from storage import db as store
from storage.reports import enqueue_report
from storage.trends import Period
from tests.web.conftest import make_app
from tests.web.seed import NOW

SPIKE_DAY = (NOW - timedelta(days=10)).replace(hour=0)  # 2026-11-10
BURST = "I was charged twice for one order, want a refund {n}"
EVERYDAY = ("love the new dashboard {n}", "does the plan include exports {n}",
            "the login page is slow today {n}", "moving our team over next week {n}",
            "support fixed it in minutes {n}")


def _history(path: Path, days: int = 120, burst: int = 150) -> None:
    """~30 posts a day for ``days`` days, 20 % negative; on SPIKE_DAY ``burst`` more posts, all
    negative, between 09:00 and 12:00: a 6x day."""
    rng = np.random.default_rng(3)
    posts: list[Post] = []
    for day in range(days):
        start = (NOW - timedelta(days=day)).replace(hour=0)
        for j in range(int(rng.poisson(30))):
            when = start + timedelta(minutes=int(rng.integers(0, 24 * 60)))
            if when < NOW:
                text = EVERYDAY[int(rng.integers(0, len(EVERYDAY)))].format(n=f"{day}-{j}")
                posts.append(Post("x", f"d{day}-{j}", text, when, source="x-main",
                                  brand="acme", lang="en"))
    for n in range(burst):
        when = SPIKE_DAY + timedelta(hours=9, seconds=int(n * 3 * 3600 / burst))
        posts.append(Post("x", f"b{n}", BURST.format(n=n), when, source="x-main",
                          brand="acme", lang="en"))
    db = store.open_db(path)
    store.store_page(db, "import", Page(posts=posts), NOW)
    scores = []
    for pid, platform_id in db.execute("SELECT id, platform_id FROM posts").fetchall():
        negative = platform_id.startswith("b") or int(rng.integers(0, 5)) == 0
        sentiment = "negative" if negative else "positive"
        scores.append((pid, Score(sentiment, 0.9 if negative else 0.1, 0.05, 0.05,
                                  0.7 if negative else 0.1, "m", "1"), "en"))
    store.save_scores(db, scores, NOW)
    assert db.execute("SELECT count(*) FROM reports").fetchone()[0] == 0  # no detector ran
    db.close()


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "imported.db"
    _history(path)
    return path


@pytest.fixture
def client(history: Path) -> FlaskClient:
    return make_app(history).test_client()


@pytest.mark.parametrize(("query", "key", "kinds"), [
    ("range=30d", "2026-11-10", {"volume", "negative"}),
    ("range=30d&bucket=hour", "2026-11-10T09", {"volume", "negative"}),
    ("range=90d&bucket=week", "2026-11-09", {"negative"}),
])
def test_an_imported_spike_is_shaded_and_counted(client: FlaskClient, query: str, key: str,
                                                 kinds: set[str]) -> None:
    data = client.get(f"/api/overview?{query}").get_json()
    [spike] = data["spikes"]
    assert spike["found_in_history"] is True and spike["first_bucket"] == data["buckets"].index(key)
    assert data["buckets"][spike["last_bucket"]] <= data["buckets"][-1]
    if "bucket=hour" in query:  # the three burst hours are one spike
        assert data["buckets"][spike["last_bucket"]] == "2026-11-10T11"
    for kind in kinds:
        assert {"volume": "posts in a", "negative": "negative share"}[kind] in spike["title"]
    assert "charged twice" in spike["terms"]  # the spike's own phrases, brand words left out
    assert "acme" not in " ".join(spike["terms"])


def test_the_page_shows_the_spike_in_the_card_and_the_list(client: FlaskClient) -> None:
    html = client.get("/?range=30d").get_data(as_text=True)
    assert '<p class="big" data-kpi="spikes">1</p>' in html
    assert "1 found in the stored posts" in html and "spike in history" in html
    assert "2026-11-10 UTC" in html and "posts in a day (usual" in html
    assert "/queue?range=24h&amp;end=2026-11-10T23:59:59Z" in html  # its posts: that day


def test_a_recorded_spike_and_the_same_found_one_count_once(history: Path) -> None:
    db = store.open_db(history)
    enqueue_report(db, Report(kind="spike", name="live", brand="acme", source="x-main",
                              title="acme on x-main: 60 posts in an hour (usual 1)",
                              window_start=SPIKE_DAY + timedelta(hours=10),
                              window_end=SPIKE_DAY + timedelta(hours=11)), ["ops"], NOW)
    period = Period.ending(NOW, 30 * 24, whole_days=True)
    daily = overview(db, period, "day", exclude=["acme"])["spikes"]
    assert [(s["title"], s["found_in_history"]) for s in daily] == [
        ("acme on x-main: 60 posts in an hour (usual 1)", False)]
    hourly = overview(db, Period.ending(NOW, 30 * 24), "hour")["spikes"]
    # the recorded hour covers one of the three burst hours: the found run is the same event
    assert [s["found_in_history"] for s in hourly] == [False]
    db.close()


def test_a_steady_history_has_no_spike(tmp_path: Path) -> None:
    path = tmp_path / "steady.db"
    _history(path, burst=0)
    client = make_app(path).test_client()
    for query in ("range=30d", "range=30d&bucket=hour", "range=90d", "range=90d&bucket=week",
                  "range=7d&bucket=hour", "range=24h"):
        assert client.get(f"/api/overview?{query}").get_json()["spikes"] == [], query
