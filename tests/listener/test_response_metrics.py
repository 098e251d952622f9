"""Issue 18: the team's response times as Prometheus gauges, computed from the database at each
scrape — per configured brand and per active agent over the last 7 days, and open posts past
their brand's first-response target — with labels bounded to configured brands and active
people whatever the posts hold."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from listener.config import Config, load_config
from listener.core.models import Page, Post, Score
from listener.metrics import inbox_metrics, scrape_registry, serve
from storage import db as store
from storage import inbox, triage, users

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = """\
storage: {path: t.db}
metrics: {port: 0}
brands:
  - {name: acme, query: acme}
  - {name: globex, query: globex}
inbox:
  first_response_minutes: 240
  brand_first_response_minutes: {acme: 60}
"""
NEGATIVE = Score("negative", 0.9, 0.05, 0.05, 0.8, "default", "v1")
# (brand, hours ago, who answers, minutes to answer, minutes to resolve, assignee)
POSTS = [
    ("acme", 30, "alice", 10, 60, None),
    ("acme", 20, "alice", 30, None, None),
    ("acme", 10, "bob", 50, 200, "bob"),
    ("globex", 5, "bob", 120, None, None),
    ("globex", 4, "token", 5, None, None),  # answered with the shared token: no agent label
    ("initech", 3, "alice", 1, None, None),  # not a configured brand: no brand label
    ("acme", 24 * 9, "alice", 1, None, None),  # older than the 7 days
    ("acme", 2, None, 0, None, None),  # waiting past acme's 1 hour: overdue
    ("acme", 3, None, 0, None, "carol"),  # assigned, still unanswered: overdue
    ("acme", 0.5, None, 0, None, None),  # within the target
    ("acme", 24 * 8, None, 0, None, None),  # stale: past the week, not counted
    ("globex", 5, None, 0, None, None),  # past globex's 4 hours: overdue
]


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path, environ={})


def _seed(config: Config) -> None:
    db = store.open_db(config.database)
    page = [Post(platform="x", platform_id=f"m{i}", text=f"broken {i}",
                 created_at=NOW - timedelta(hours=spec[1]), source="x-main", brand=spec[0])
            for i, spec in enumerate(POSTS)]
    store.store_page(db, "x-main", Page(posts=page), NOW)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    store.save_scores(db, [(ids[p.platform_id], NEGATIVE, "en") for p in page], NOW)
    for name, role in (("alice", "agent"), ("bob", "agent"), ("carol", "agent"),
                       ("root", "admin"), ("vera", "viewer")):
        users.add(db, name, role, None, NOW)
    users.set_disabled(db, "carol", True, NOW)  # left the team: no label of her own
    for i, (_, hours, by, first, resolved, assignee) in enumerate(POSTS):
        post_id, created = ids[f"m{i}"], NOW - timedelta(hours=hours)
        if assignee:
            inbox.assign(db, post_id, assignee, "root", created)
        if by:
            triage.set_status(db, post_id, "replied", by, created + timedelta(minutes=first))
        if by and resolved:
            triage.set_status(db, post_id, "handled", by, created + timedelta(minutes=resolved))
    db.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    found = _config(tmp_path)
    _seed(found)
    return found


def _samples(config: Config, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    registry = scrape_registry(config, lambda: NOW, with_process=False)
    return {tuple(sorted(s.labels.items())): s.value
            for family in registry.collect() for s in family.samples if s.name == name}


def test_first_response_and_resolution_quantiles_per_brand(config: Config) -> None:
    first = _samples(config, "listener_first_response_seconds")
    assert first == {
        (("brand", "acme"), ("quantile", "0.5")): 1800.0,  # 10, 30, 50 minutes
        (("brand", "acme"), ("quantile", "0.9")): 3000.0,
        (("brand", "globex"), ("quantile", "0.5")): 3750.0,  # 5 and 120 minutes
        (("brand", "globex"), ("quantile", "0.9")): 7200.0,
    }
    resolution = _samples(config, "listener_resolution_seconds")
    assert resolution == {  # globex: nothing resolved, so no samples rather than NaN
        (("brand", "acme"), ("quantile", "0.5")): 7800.0,  # 60 and 200 minutes
        (("brand", "acme"), ("quantile", "0.9")): 12_000.0,
    }


def test_first_response_per_agent_only_for_active_people(config: Config) -> None:
    agents = _samples(config, "listener_first_response_seconds_by_agent")
    assert agents == {
        # every post an agent answered counts, whatever its brand: 1 (initech), 10, 30 minutes
        (("agent", "alice"), ("quantile", "0.5")): 600.0,
        (("agent", "alice"), ("quantile", "0.9")): 1800.0,
        (("agent", "bob"), ("quantile", "0.5")): 5100.0,  # 50 and 120
        (("agent", "bob"), ("quantile", "0.9")): 7200.0,
    }


def test_overdue_posts_per_configured_brand(config: Config) -> None:
    assert _samples(config, "listener_overdue_posts") == {
        (("brand", "acme"),): 2.0, (("brand", "globex"),): 1.0}


def test_the_endpoint_serves_them(config: Config) -> None:
    config.metrics.port = 0
    server = serve(config, clock=lambda: NOW)
    assert server is not None
    try:
        with httpx.Client(trust_env=False) as client:
            text = client.get(f"http://127.0.0.1:{server.server_port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    assert 'listener_first_response_seconds{brand="acme",quantile="0.5"} 1800.0' in text
    assert 'listener_overdue_posts{brand="globex"} 1.0' in text
    assert "initech" not in text and "token" not in text and "carol" not in text


def test_a_database_without_the_tables_costs_these_gauges_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path)
    sqlite3.connect(config.database).close()  # an empty file: no tables at all
    with caplog.at_level(logging.WARNING, logger="listener.metrics"):
        assert list(inbox_metrics(config, NOW)) == []
    assert "cannot read response times" in caplog.text


def test_an_empty_database_has_zero_overdue_and_no_quantiles(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store.open_db(config.database).close()
    assert _samples(config, "listener_overdue_posts") == {
        (("brand", "acme"),): 0.0, (("brand", "globex"),): 0.0}
    assert _samples(config, "listener_first_response_seconds") == {}
