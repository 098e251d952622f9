"""Metrics and health: counters from a real run, gauges and /healthz from the database.

Real parts: the default model, a SQLite file, the WSGI endpoint over HTTP on 127.0.0.1 (an
ephemeral port), and the daemon in a subprocess for the end-to-end check.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifiers.base import Classifier
from classifiers.loader import load_classifier
from listener import health
from listener.config import load_config
from listener.core.errors import ListenerError
from listener.metrics import REGISTRY, scrape_registry, serve
from listener.pipeline import Runtime
from storage import backlog, delivery_outcomes, destination_health, runs, source_pauses
from storage import db as store
from tests.e2e import NEGATIVE, POSITIVE, cli_env, posts_jsonl, setup_dir
from tests.fakes.slack import FakeSlackWebhook

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CONFIG = """\
storage: {path: t.db}
metrics: {port: 0, unhealthy_after: 3}
sources:
  - {type: file, name: imports, path: posts.jsonl, interval: 60}
rules:
  - name: unhappy
    when: {sentiment: [negative], min_probability: 0.6}
    destinations: [console]
destinations:
  - {type: console, name: console}
"""


@pytest.fixture(scope="module")
def model() -> Classifier:
    return load_classifier("default", batch_size=8, device="cpu")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def write_config(tmp_path: Path, texts: list[str]) -> Path:
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(texts), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_a_run_counts_posts_batches_deliveries_and_latency(
    tmp_path: Path, model: Classifier, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(write_config(tmp_path, NEGATIVE + POSITIVE), environ={})
    before = {
        "posts": sample("listener_posts_collected_total", source="imports"),
        "batches": sample("listener_classifier_batch_seconds_count"),
        "delivered": sample("listener_delivery_attempts_total", destination="console",
                            outcome="delivered"),
        "latency": sample("listener_alert_delivery_latency_seconds_count", destination="console"),
        "ok": sample("listener_stage_runs_total", stage="dispatch", status="ok"),
    }
    runtime = Runtime(config, strict=True, preloaded=model)
    assert runtime.run_once()
    assert sample("listener_posts_collected_total", source="imports") - before["posts"] == 6
    assert sample("listener_classifier_batch_seconds_count") - before["batches"] == 1
    delivered = sample("listener_delivery_attempts_total", destination="console",
                       outcome="delivered") - before["delivered"]
    assert delivered == len(NEGATIVE) == capsys.readouterr().out.count("rules: unhappy")
    assert sample("listener_alert_delivery_latency_seconds_count",
                  destination="console") - before["latency"] == len(NEGATIVE)
    assert sample("listener_stage_runs_total", stage="dispatch", status="ok") - before["ok"] == 1

    scraped = scrape_registry(config, with_process=False)
    assert scraped.get_sample_value("listener_queue_depth", {"queue": "unscored"}) == 0
    assert scraped.get_sample_value("listener_database_readable") == 1
    assert scraped.get_sample_value("listener_healthy") == 1
    assert scraped.get_sample_value("listener_source_last_poll_success_timestamp_seconds",
                                    {"source": "imports"}) > T0.timestamp()
    (tmp_path / "posts.jsonl").write_text(posts_jsonl(NEGATIVE + POSITIVE + ["one more"]))
    assert runtime.run_collect(runtime.sources()[0]) == 1
    assert scraped.get_sample_value("listener_queue_depth", {"queue": "unscored"}) == 1


def record(db: Any, stage: str, target: str, at: datetime, error: str | None = None) -> None:
    run = store.start_run(db, stage, target, at)
    store.finish_run(db, run, at + timedelta(seconds=1), items=0 if error else 3, error=error)


@pytest.fixture()
def endpoint(tmp_path: Path) -> Iterator[tuple[Any, list[datetime], Any]]:
    """``(db, now, client)``: a migrated database and the endpoint serving it, clock ``now[0]``."""
    config = load_config(write_config(tmp_path, []), environ={})
    now = [T0]
    server = serve(config, clock=lambda: now[0])
    assert server is not None
    db = store.open_db(config.database)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", trust_env=False) as c:
        yield db, now, c
    server.shutdown()
    server.server_close()
    db.close()


def test_healthz_fails_after_unhealthy_after_intervals_of_errors_and_recovers(
    endpoint: tuple[Any, list[datetime], Any],
) -> None:
    db, now, client = endpoint
    record(db, "collect", "imports", T0)
    for minute in (1, 2, 3, 4):  # interval 60 s: failing since T0+1min
        record(db, "collect", "imports", T0 + timedelta(minutes=minute), "SourceError: boom")
    now[0] = T0 + timedelta(minutes=3, seconds=30)  # failing 150 s <= 3 x 60 s
    answer = client.get("/healthz")
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "ok"
    assert body["stages"]["collect:imports"]["status"] == "error"
    assert body["stages"]["collect:imports"]["error"] == "SourceError: boom"

    now[0] = T0 + timedelta(minutes=4, seconds=30)  # failing 210 s > 180 s
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["failing"] == ["collect:imports"]
    metrics = client.get("/metrics").text
    assert "listener_healthy 0.0" in metrics
    assert 'listener_stage_failing_seconds{stage="collect",target="imports"} 210.0' in metrics

    record(db, "collect", "imports", T0 + timedelta(minutes=5))
    now[0] = T0 + timedelta(minutes=5, seconds=5)
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["stages"]["collect:imports"]["last_ok"] == "2026-11-20T10:05:01Z"
    assert client.get("/nothing").status_code == 404


def test_an_unreadable_database_is_a_503_and_a_zero_gauge(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, []), environ={})
    config.database.write_bytes(b"this is not a SQLite database, whatever its name says" * 40)
    status, body = health.healthz(config, T0)
    assert status == 503 and body["database"].startswith("unreadable: ")
    scraped = scrape_registry(config, with_process=False)
    assert scraped.get_sample_value("listener_database_readable") == 0


def test_a_port_in_use_is_a_start_up_error_naming_the_setting(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, []), environ={})
    first = serve(config)
    assert first is not None
    config.metrics.port = first.server_port
    try:
        with pytest.raises(ListenerError, match="set metrics.port to a free port, or to null"):
            serve(config)
    finally:
        first.shutdown()
        first.server_close()
    config.metrics.port = None
    assert serve(config) is None


def test_every_scrape_query_is_indexed(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "t.db")
    queries = [runs.LAST_RUN_SQL, runs.LAST_OK_SQL, runs.STREAK_START_SQL,
               backlog.LAST_SCORED_SQL, backlog.UNSCORED_SQL, backlog.UNEVALUATED_SQL,
               backlog.ALERTS_SQL, destination_health.RETRYING_SQL,
               destination_health.LAST_DELIVERED_SQL, delivery_outcomes.DELIVERIES_MARK_SQL,
               delivery_outcomes.OUTCOMES_SINCE_SQL]
    for sql in queries:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", ["x"] * sql.count("?"))]
        scans = [step for step in plan if step.startswith("SCAN")]
        # the only scan allowed walks the partial index that holds just the pending scores
        assert scans in ([], ["SCAN scores USING INDEX idx_scores_rules_pending"]), (sql, plan)
    # the newest delivery to a destination is one step into the index: nothing to sort
    plan = [row[3] for row in db.execute(
        f"EXPLAIN QUERY PLAN {destination_health.LAST_DELIVERED_SQL}", ["x"])]
    assert not any("TEMP B-TREE" in step for step in plan), plan
    # one run's outcomes read the run's own deliveries: a rowid range
    plan = [row[3] for row in db.execute(
        f"EXPLAIN QUERY PLAN {delivery_outcomes.OUTCOMES_SINCE_SQL}", [0])]
    assert plan[0] == "SEARCH d USING INTEGER PRIMARY KEY (rowid>?)", plan
    # source_state has one row per configured source: a scan of it costs nothing
    assert [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {source_pauses.PAUSED_SQL}")] == \
        ["SCAN source_state"]


def test_the_daemon_serves_metrics_and_health(tmp_path: Path) -> None:
    config = setup_dir(tmp_path, NEGATIVE[:1], interval=1)
    config.write_text(config.read_text() + "metrics:\n  port: 0\n")
    with FakeSlackWebhook() as slack:
        daemon = subprocess.Popen([sys.executable, "-m", "listener", "run", "-c", str(config)],
                                  env=cli_env(slack.url), stderr=subprocess.PIPE, text=True)
        try:
            assert daemon.stderr is not None
            line = next(x for x in daemon.stderr if "metrics on http://" in x or "Error" in x)
            url = line.split("metrics on ")[1].split("/metrics")[0]
            slack.wait_for_requests(1, timeout=120)
            with httpx.Client(base_url=url, trust_env=False) as client:
                answer = client.get("/healthz")
                text = client.get("/metrics").text
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=60)
    assert answer.status_code == 200
    assert json.loads(answer.text)["stages"]["collect:imports"]["status"] == "ok"
    assert 'listener_posts_collected_total{source="imports"} 1.0' in text
    assert "listener_classifier_batch_seconds_bucket" in text
    assert 'listener_queue_depth{queue="unscored"} 0.0' in text
