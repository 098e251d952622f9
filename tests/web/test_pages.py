"""Pages, JSON API and exports through Flask's test client, on the seeded SQLite file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from flask.testing import FlaskClient

from listener.core.models import Page, Post, Score
from listener.web.export import csv_cell
from listener.web.overview_data import term_counts
from storage import db as store
from storage.tx import connect
from tests.web.seed import NOW, SPIKE_START, Seeded


def _count(path: Path, start: str, end: str, sentiment: str | None = None) -> int:
    """Straight from posts and scores, to check the rollups against."""
    db = connect(path)
    n = db.execute("SELECT count(*) FROM posts p JOIN scores s ON s.post_id = p.id"
                   " WHERE p.created_at >= ? AND p.created_at < ? AND (?3 IS NULL OR"
                   " s.sentiment = ?3)", [start, end, sentiment]).fetchone()[0]
    db.close()
    return int(n)


def test_overview_api_counts_what_was_stored(client: FlaskClient,
                                             seeded: tuple[Path, Seeded]) -> None:
    data = client.get("/api/overview?range=7d&bucket=hour").get_json()
    period = data["period"]
    assert len(data["buckets"]) == 168 and period["end"] == "2026-11-20T13:00:00Z"
    assert data["buckets"][-1] == "2026-11-20T12"  # the current hour is the last bar
    totals = data["totals"]["current"]
    assert totals["total"] == sum(data["series"]["total"]) == _count(seeded[0], period["start"],
                                                                     period["end"])
    assert totals["negative"] == _count(seeded[0], period["start"], period["end"], "negative")
    assert data["totals"]["previous"]["total"] == _count(seeded[0], period["previous_start"],
                                                         period["start"])
    assert totals["unscored"] == 0 and totals["negative"] > 40
    spike_hour = data["buckets"].index(SPIKE_START.strftime("%Y-%m-%dT%H"))
    assert data["series"]["negative"][spike_hour] >= 40
    assert [(s["first_bucket"], s["last_bucket"]) for s in data["spikes"]] == [
        (spike_hour, spike_hour)]
    assert data["spikes"][0]["terms"] == ["outage", "morning", "loads"]
    assert {row["name"] for row in data["by_brand"]} == {"acme", "globex"}
    top = data["terms"][0]
    assert top["term"] in {"outage", "morning", "nothing", "loads"}
    assert 0 < top["previous_share"] < top["share"] <= 1  # the burst made it news
    assert "acme" not in {t["term"] for t in data["terms"]}  # brand words are never news
    weekly = client.get("/api/overview?range=90d&bucket=week").get_json()
    assert weekly["period"] == {"start": "2026-08-23T00:00:00Z", "end": "2026-11-21T00:00:00Z",
                                "bucket": "week", "previous_start": "2026-05-25T00:00:00Z"}
    assert weekly["buckets"][0] == "2026-08-17" and weekly["buckets"][-1] == "2026-11-16"
    assert sum(weekly["series"]["total"]) == 1000 + 40 + 3


def test_bad_filters_answer_400_with_a_sentence(client: FlaskClient) -> None:
    for query, words in (("range=1y", "'range' must be one of"), ("bucket=month", "'bucket'"),
                         ("end=yesterday", "'end' must be a date"), ("page=0", "'page'")):
        response = client.get(f"/api/overview?{query}")
        assert response.status_code == 400 and words in response.get_json()["error"], query
    refused = client.get("/api/overview?range=90d&bucket=hour")  # refused, never made daily
    assert refused.status_code == 400 and "per day or per week" in refused.get_json()["error"]


def test_search_errors_are_the_parsers_message_not_500(client: FlaskClient) -> None:
    """The search box reads the brand query language (issue 18): what it cannot read is shown
    with the parser's message — the page keeps the search to correct (200), the API is a 400."""
    for q, words in (('"unbalanced', "unbalanced quote"), ("refund AND", "ends where a term"),
                     ("-refund", "no positive term"), ("refund OR -twice", "nothing beside it")):
        api = client.get("/api/queue", query_string={"q": q})
        assert api.status_code == 400 and words in api.get_json()["error"], q
        page = client.get("/queue", query_string={"q": q})
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "The search could not be read" in html, q
        assert 'role="alert"' in html and "no such column" not in html
    for q in ("can't", "text:", "charged -twice", "NEAR(refund)"):  # FTS5 syntax is text now
        assert client.get("/api/queue", query_string={"q": q}).status_code == 200, q
    found = client.get("/api/queue", query_string={"q": "\"can't\" OR refund*", "status": "all"})
    assert found.status_code == 200 and found.get_json()["rows"]
    twice = client.get("/api/queue", query_string={"q": '"charged twice" -month',
                                                   "status": "all"}).get_json()
    assert twice["total"] == 0
    charged = client.get("/api/queue", query_string={"q": '"charged twice"', "status": "all",
                                                     "range": "90d"}).get_json()
    assert charged["rows"] and all("charged twice" in r["text"] for r in charged["rows"])


def test_queue_api_filters_and_orders(client: FlaskClient) -> None:
    rows = client.get("/api/queue?range=90d&status=all&source=reddit&order=rank").get_json()["rows"]
    assert rows and {r["source"] for r in rows} == {"reddit"}
    ranks = [r["rank"] for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    waiting = client.get("/api/queue?range=90d&status=all&source=reddit").get_json()["rows"]
    priorities = [r["priority"] for r in waiting]  # by default the time waited counts (issue 18)
    assert priorities == sorted(priorities, reverse=True)
    negative = client.get("/api/queue?sentiment=negative&lang=fr").get_json()
    assert 0 < len(negative["rows"]) <= negative["total"]
    assert {(r["sentiment"], r["lang"]) for r in negative["rows"]} == {("negative", "fr")}


def test_csv_export_neutralises_formulas_and_json_export_round_trips(
    client: FlaskClient, seeded: tuple[Path, Seeded]
) -> None:
    db = store.open_db(seeded[0])
    evil = Post(platform="x", platform_id="evil", text='=HYPERLINK("http://evil.example","hi")',
                created_at=NOW, source="x-main", brand="acme", author="@admin",
                author_followers=10_000_000, url="https://x.example/evil")
    store.store_page(db, "x-main", Page(posts=[evil]), NOW)
    post_id = db.execute("SELECT id FROM posts WHERE platform_id = 'evil'").fetchone()[0]
    store.save_scores(db, [(post_id, Score("negative", .9, .05, .05, .99, "m", "1"), "en")], NOW)
    db.close()
    text = client.get("/export/queue.csv?range=24h&order=rank").get_data(as_text=True)
    first = next(csv.DictReader(io.StringIO(text)))
    assert first["text"] == "'" + evil.text and first["author"] == "'@admin"
    assert csv_cell("-2+3") == "'-2+3" and csv_cell(-2) == -2 and csv_cell("fine") == "fine"
    response = client.get("/export/queue.json?range=24h&order=rank")
    assert response.headers["Content-Disposition"] == 'attachment; filename="queue.json"'
    assert json.loads(response.get_data(as_text=True))[0]["text"] == evil.text


def test_every_view_exports_csv_and_json(client: FlaskClient) -> None:
    for view in ("overview", "queue", "alerts", "feedback"):
        for fmt, kind in (("csv", "text/csv"), ("json", "application/json")):
            response = client.get(f"/export/{view}.{fmt}")
            assert response.status_code == 200 and response.mimetype == kind, (view, fmt)
        assert client.get(f"/export/{view}.xml").status_code == 404


def test_retry_only_requeues_failed_alerts(client: FlaskClient, seeded: tuple[Path, Seeded]
                                            ) -> None:
    token = client.get("/alerts").get_data(as_text=True).split('name="csrf" value="')[1][:64]
    failed = seeded[1].failed_alert
    assert client.post(f"/alerts/{failed}/retry", data={"csrf": token}).status_code == 303
    again = client.post(f"/alerts/{failed}/retry", data={"csrf": token})
    assert again.status_code == 409 and "not parked" in again.get_data(as_text=True)
    assert client.get("/api/alerts?status=failed").get_json()["rows"] == []


def test_feedback_validation_and_missing_posts(client: FlaskClient, seeded: tuple[Path, Seeded]
                                               ) -> None:
    post = seeded[1].top_post
    token = client.get(f"/posts/{post}").get_data(as_text=True).split(
        'name="csrf" value="')[1][:64]
    bad = client.post(f"/posts/{post}/feedback",
                      data={"csrf": token, "field": "sentiment", "label": "angry"})
    assert bad.status_code == 400
    assert client.get("/posts/999999").status_code == 404
    assert client.post("/posts/999999/status",
                       data={"csrf": token, "status": "handled"}).status_code == 404
    done = client.post(f"/posts/{post}/feedback",
                       data={"csrf": token, "field": "relevance", "label": "not_relevant"})
    assert done.status_code == 303
    assert client.get(f"/api/posts/{post}").get_json()["status"] == "not_relevant"


def test_an_empty_range_offers_the_newest_posts(client: FlaskClient) -> None:
    html = client.get("/?end=2026-12-31").get_data(as_text=True)
    assert "No posts in this range" in html and "end=2026-11-20" in html


def test_term_counts_count_posts_not_words_and_skip_brand_words() -> None:
    texts = ["The login is BROKEN, login again", "Acme Cloud refund http://x.example/acme",
             "@acme where is my refund?"]
    assert term_counts(texts, exclude=["Acme Cloud"]) == {"login": 1, "broken": 1, "refund": 2}


def test_an_incidents_link_opens_the_queue_filtered_to_its_posts(
    client: FlaskClient, seeded: tuple[Path, Seeded]
) -> None:
    """Issue 13 #4: the incident alert links to the queue filtered to the incident."""
    from sqlite_utils import Database

    db = Database(seeded[0])
    members = [r[0] for r in db.execute("SELECT post_id FROM triage ORDER BY post_id LIMIT 3")]
    db.execute("INSERT INTO incidents (id, brand, opened_at, first_at, last_at, reports,"
               " customers, centroid, updated_at) VALUES ('0123456789abcdef', 'acme', 'x', 'x',"
               " 'x', 3, 3, x'', 'x')")
    db.conn.executemany("INSERT INTO incident_posts (incident_id, post_id, added_at) VALUES"
                        " ('0123456789abcdef', ?, 'x')", [(m,) for m in members])
    db.conn.commit()
    rows = client.get("/api/queue?incident=0123456789abcdef&status=all").get_json()["rows"]
    assert sorted(r["post_id"] for r in rows) == members  # whatever the time range
    page = client.get("/queue?incident=0123456789abcdef&status=all")
    assert page.status_code == 200 and b"incident-filter" in page.data
    assert client.get("/queue?incident=<script>").status_code == 400
