"""Issue 18: response times on the overview — the card per brand and per agent for the
overview's period and brand, and /export/response-times.csv with the same numbers, safe to open
in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from listener.core.models import Page, Post, parse_iso
from storage import db as store
from storage import inbox, triage
from storage.tx import connect
from tests.web.people import add_people, app_for, logged_in
from tests.web.seed import NOW, Seeded

HOSTILE_BRAND = "=HYPERLINK(\"http://evil.example\")"


def _posts(path: Path, brand: str, count: int) -> list[tuple[int, str]]:
    """The newest ``count`` posts of a brand written in the last day: (id, created_at)."""
    db = connect(path)
    rows = db.execute("SELECT id, created_at FROM posts WHERE brand = ? AND created_at < ?"
                      " ORDER BY created_at DESC LIMIT ?", [brand, "2026-11-20T11:00:00Z",
                                                            count]).fetchall()
    db.close()
    return [(int(r[0]), str(r[1])) for r in rows]


def _answer(path: Path, post_id: int, created: str, by: str, minutes: int,
            resolved_minutes: int | None = None, assignee: str | None = None) -> None:
    at = parse_iso(created)
    db = connect(path)
    if assignee:
        inbox.assign(db, post_id, assignee, "root", at)
    triage.set_status(db, post_id, "replied", by, at + timedelta(minutes=minutes))
    if resolved_minutes is not None:
        triage.set_status(db, post_id, "handled", by, at + timedelta(minutes=resolved_minutes))
    db.close()


@pytest.fixture
def answered(seeded: tuple[Path, Seeded]) -> Path:
    """acme: 3 posts answered after 10, 20 and 90 minutes (two resolved after 60 and 120);
    globex: 1 answered after 30 by bob; a post of a hostile brand answered by '@cmd'."""
    path = seeded[0]
    acme, globex = _posts(path, "acme", 3), _posts(path, "globex", 1)
    _answer(path, *acme[0], "alice", 10, 60)
    _answer(path, *acme[1], "alice", 20, 120)
    _answer(path, *acme[2], "bob", 90, assignee="bob")
    _answer(path, *globex[0], "bob", 30)
    db = connect(path)
    store.store_page(db, "x-main", Page(posts=[Post(
        platform="x", platform_id="evil1", text="hi", created_at=NOW - timedelta(hours=3),
        source="x-main", brand=HOSTILE_BRAND, url="https://x.example/evil1")]), NOW)
    evil = db.execute("SELECT id, created_at FROM posts WHERE platform_id = 'evil1'").fetchone()
    db.close()
    _answer(path, int(evil[0]), str(evil[1]), "@cmd", 5)
    add_people(path, vera="viewer")
    return path


def _client(path: Path) -> FlaskClient:
    return logged_in(app_for(path), "vera")  # reading is everyone's


def _rows(client: FlaskClient, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/export/response-times.csv{query}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="response-times.csv"' in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_csv_has_medians_and_p90_per_brand_and_agent_in_seconds(answered: Path) -> None:
    rows = _rows(_client(answered), "?range=7d")
    by = {(r["by"], r["name"]): r for r in rows}
    acme = by[("brand", "acme")]
    assert (acme["answered"], acme["first_response_median_seconds"],
            acme["first_response_p90_seconds"]) == ("3", "1200", "5400")
    assert (acme["resolved"], acme["resolution_median_seconds"],
            acme["resolution_p90_seconds"]) == ("2", "5400", "7200")
    globex = by[("brand", "globex")]
    assert (globex["answered"], globex["first_response_median_seconds"], globex["resolved"],
            globex["resolution_median_seconds"]) == ("1", "1800", "0", "")
    alice, bob = by[("agent", "alice")], by[("agent", "bob")]
    assert (alice["answered"], alice["first_response_median_seconds"]) == ("2", "900")
    assert (bob["answered"], bob["first_response_median_seconds"]) == ("2", "3600")
    assert {r["period_end"] for r in rows} == {"2026-11-21T00:00:00Z"}  # whole days, per day
    assert {r["period_start"] for r in rows} == {"2026-11-14T00:00:00Z"}


def test_formulas_in_names_are_defused(answered: Path) -> None:
    rows = _rows(_client(answered), "?range=7d")
    names = {(r["by"], r["name"]) for r in rows}
    assert ("brand", "'" + HOSTILE_BRAND) in names and ("agent", "'@cmd") in names
    assert not any(r["name"].startswith(("=", "@", "+", "-")) for r in rows)


def test_the_brand_and_period_filters_narrow_the_csv(answered: Path) -> None:
    client = _client(answered)
    rows = _rows(client, "?range=7d&brand=acme")
    assert {(r["by"], r["name"], r["answered"]) for r in rows} == {
        ("brand", "acme", "3"), ("agent", "alice", "2"), ("agent", "bob", "1")}
    old = _rows(client, "?range=7d&end=2026-11-01")
    assert old == []
    assert client.get("/export/response-times.csv?range=1y").status_code == 400
    assert client.get("/export/response-times.csv?brand=" + "x" * 201).status_code == 400


def test_the_overview_card_shows_the_same_numbers(answered: Path) -> None:
    html = _client(answered).get("/?range=7d").get_data(as_text=True)
    card = html.split('<section id="response-times">')[1].split("</section>")[0]
    brand = card.split('data-response-by="brand"')[1].split("</table>")[0]
    acme = brand.split('<tr data-name="acme">')[1].split("</tr>")[0]
    cells = [c.rsplit(">", 1)[1].strip() for c in acme.split("</td>")[:-1]]
    assert cells == ["acme", "3", "20 min", "1 h 30 min", "2", "1 h 30 min", "2 h"]
    agent = card.split('data-response-by="agent"')[1].split("</table>")[0]
    assert '<tr data-name="alice">' in agent and '<tr data-name="bob">' in agent
    assert "=HYPERLINK(&#34;http://evil.example&#34;)" in card  # escaped, shown as text
    link = card.split('id="response-times-csv"')[0].rsplit('href="', 1)[1].split('"')[0]
    assert link == "/export/response-times.csv?range=7d"
    narrowed = _client(answered).get("/?range=7d&brand=globex&source=reddit").get_data(
        as_text=True).split('<section id="response-times">')[1].split("</section>")[0]
    assert "(globex), from every source" in narrowed
    assert "/export/response-times.csv?range=7d&amp;brand=globex" in narrowed
    assert '<tr data-name="acme">' not in narrowed


def test_an_empty_period_says_so(seeded: tuple[Path, Seeded]) -> None:
    html = app_for(seeded[0]).test_client().get("/?range=24h").get_data(as_text=True)
    card = html.split('<section id="response-times">')[1].split("</section>")[0]
    assert card.count("no answered posts in this period") == 2


def test_the_overview_shows_accuracy_on_reviewed_posts_per_model_version(
    seeded: tuple[Path, Seeded]
) -> None:
    """Issue 18: each model version is judged by its own scores of the reviewed posts — a post
    re-scored by a new version counts for both, each with its own label."""
    from listener.core.models import Score
    from storage import feedback

    path = seeded[0]
    db = connect(path)
    ids = [r[0] for r in db.execute("SELECT post_id FROM triage ORDER BY post_id LIMIT 4")]
    for pid in ids:  # the reviewers say: all negative
        feedback.add_feedback(db, pid, "sentiment", "negative", "ann", NOW)
    store.save_scores(db, [(pid, Score("negative" if i < 3 else "neutral", 0.8, 0.1, 0.1, 0.9,
                                       "default", "v-next"), "en")
                           for i, pid in enumerate(ids)], NOW)
    by_version = {(a.model_version, a.field): a for a in feedback.accuracy_by_version(db)}
    db.close()
    html = app_for(path).test_client().get("/?range=7d").get_data(as_text=True)
    card = html.split('<section id="model-accuracy">')[1].split("</section>")[0]
    row = card.split('data-version="v-next" data-field="sentiment"')[1].split("</tr>")[0]
    assert by_version[("v-next", "sentiment")].reviewed == 4
    assert ">4<" in row and "75.0 %" in row
    assert len(by_version) >= 2  # the version the seed scored with is listed too
