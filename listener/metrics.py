"""Prometheus metrics: counters the stages bump as they work, gauges read from the database.

- In-process (:mod:`listener.core.instruments`, its :data:`REGISTRY`): posts collected and failed polls per source, stage
  runs by outcome, classifier batch latency, delivery attempts by outcome and alert delivery
  latency. They start from zero in every process, as Prometheus counters do.
- At scrape time (:class:`DatabaseCollector`): queue depths, the last successful run of every
  stage (the last successful poll of every source), failing stages and paused sources, from the
  same cheap indexed queries as ``/healthz`` and ``listener status`` (:mod:`listener.health`).
  So they are right after a restart, and for cron set-ups ``listener metrics`` prints them for
  node_exporter's textfile collector.
- Also at scrape time, how fast the team answers (issue 18, :func:`inbox_metrics`): first-response
  and resolution times of the last 7 days' posts per brand (median and 90th percentile), first
  responses per agent, and open posts past their brand's first-response target. Labels are
  bounded: configured brands and active users only, whatever the posts hold.

The metric objects live on a dedicated registry (not prometheus_client's global one), so
importing a library that registers its own metrics changes nothing here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from listener.config import Config
from listener.core.errors import ListenerError
from listener.core.instruments import REGISTRY
from listener.core.models import Clock, parse_iso, utcnow
from listener.health import Snapshot, healthz, load_snapshot
from storage import teamwork, users
from storage.engine import Db
from storage.inbox import ResponseTimes
from storage.tx import connect

log = logging.getLogger(__name__)

class DatabaseCollector:
    """Gauges computed from the database on every scrape (a new connection each time)."""

    def __init__(self, config: Config, clock: Clock = utcnow) -> None:
        self.config, self.clock = config, clock

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "listener_database_readable", "1 when the database answered this scrape's queries.")
        try:
            snapshot = load_snapshot(self.config)
        except (sqlite3.Error, ListenerError) as exc:
            log.warning("metrics: cannot read the database %s: %s", self.config.database, exc)
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        yield from _snapshot_metrics(snapshot, self.clock(), self.config.metrics.unhealthy_after)
        yield from inbox_metrics(self.config, self.clock())


def _snapshot_metrics(snapshot: Snapshot, now: datetime, unhealthy_after: int) -> Iterator[Metric]:
    healthy = GaugeMetricFamily(
        "listener_healthy", "1 when /healthz answers 200: no stage failing for too long or "
        "stuck, no alert parked as failed, no destination that keeps failing.")
    healthy.add_metric([], 1 if snapshot.healthy(now, unhealthy_after) else 0)
    destinations = GaugeMetricFamily(
        "listener_destination_failing_alerts",
        "Pending alerts of a destination that keeps failing (nothing delivered to it since).",
        labels=["destination"])
    for bad in snapshot.failing_destinations:
        destinations.add_metric([bad.destination], bad.retrying)
    queue = GaugeMetricFamily("listener_queue_depth", "Work waiting for the next stage.",
                              labels=["queue"])
    for name, depth in asdict(snapshot.queues).items():
        queue.add_metric([name], depth)
    last_ok = GaugeMetricFamily(
        "listener_stage_last_success_timestamp_seconds",
        "When the last successful run of a stage finished (collect: per source).",
        labels=["stage", "target"])
    last_poll = GaugeMetricFamily(
        "listener_source_last_poll_success_timestamp_seconds",
        "When the last successful poll of a source finished.", labels=["source"])
    failing = GaugeMetricFamily(
        "listener_stage_failing_seconds",
        "Seconds a stage has been failing (0: its last run succeeded).", labels=["stage", "target"])
    for stage in snapshot.stages:
        failing.add_metric([stage.stage, stage.target], stage.failing_for(now))
        if stage.last_ok is None:
            continue
        stamp = parse_iso(stage.last_ok).timestamp()
        last_ok.add_metric([stage.stage, stage.target], stamp)
        if stage.stage == "collect":
            last_poll.add_metric([stage.target], stamp)
    paused = GaugeMetricFamily(
        "listener_source_paused_until_timestamp_seconds",
        "Sources paused by a rate limit, and until when.", labels=["source"])
    for source, until in snapshot.paused.items():
        paused.add_metric([source], parse_iso(until).timestamp())
    idle = GaugeMetricFamily(
        "listener_stage_idle_seconds",
        "Running stages: seconds since their last progress (a page, a batch, a message); "
        "/healthz fails past metrics.stuck_after.", labels=["stage", "target"])
    for run in snapshot.running:
        idle.add_metric([run.stage, run.target], run.idle_for(now))
    yield from (healthy, queue, last_ok, last_poll, failing, paused, destinations, idle)


RESPONSE_WINDOW = timedelta(days=7)  # the posts whose response times the gauges summarise
QUANTILES = (("0.5", "median"), ("0.9", "p90"))  # label value, ResponseTimes field suffix


def inbox_metrics(config: Config, now: datetime) -> Iterator[Metric]:
    """The team's response gauges, read on a connection of their own; nothing (and a warning)
    when the database cannot answer, so the other gauges are still scraped."""
    try:
        db = connect(config.database)
        try:
            found = _read_inbox(db, config, now)
        finally:
            db.close()
    except (sqlite3.Error, ListenerError) as exc:
        log.warning("metrics: cannot read response times from %s: %s", config.database, exc)
        return
    yield from found


def _read_inbox(db: Db, config: Config, now: datetime) -> list[Metric]:
    brands = sorted(config.brands)
    agents = {u.name for u in users.everyone(db) if u.active and u.role != "viewer"}
    start = now - RESPONSE_WINDOW
    by_brand = [r for r in teamwork.response_times(db, start, now, "brand") if r.key in brands]
    by_agent = [r for r in teamwork.response_times(db, start, now, "agent") if r.key in agents]
    inbox = config.inbox
    overdue = teamwork.overdue_posts(
        db, now, brands, timedelta(minutes=inbox.first_response_minutes),
        {b: timedelta(minutes=m) for b, m in inbox.brand_first_response_minutes.items()},
        timedelta(days=inbox.stale_after_days))
    late = GaugeMetricFamily(
        "listener_overdue_posts", "Queue posts nobody has answered for longer than their "
        "brand's first-response target (inbox.first_response_minutes), not yet stale.",
        labels=["brand"])
    for brand, count in overdue.items():
        late.add_metric([brand], count)
    return [
        _quantiles("listener_first_response_seconds", "Seconds from a post to its first "
                   "response, of the last 7 days' answered posts, per brand.", "brand",
                   by_brand, "first_response"),
        _quantiles("listener_resolution_seconds", "Seconds from a post to its resolution "
                   "(handled or not relevant), of the last 7 days' posts, per brand.", "brand",
                   by_brand, "resolution"),
        _quantiles("listener_first_response_seconds_by_agent", "Seconds from a post to its "
                   "first response, of the last 7 days' posts an agent had (or answered).",
                   "agent", by_agent, "first_response"),
        late,
    ]


def _quantiles(name: str, documentation: str, label: str, rows: list[ResponseTimes],
               times: str) -> GaugeMetricFamily:
    """One sample per row and quantile (0.5, 0.9) of ``times`` (first_response, resolution);
    a row without such times (nothing resolved yet) has none."""
    gauge = GaugeMetricFamily(name, documentation, labels=[label, "quantile"])
    for row in rows:
        for quantile, suffix in QUANTILES:
            value = getattr(row, f"{times}_{suffix}")
            if value is not None:
                gauge.add_metric([row.key, quantile], value)
    return gauge


class _Forward:
    """Lets a per-server registry expose the process-wide :data:`REGISTRY` too."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def scrape_registry(
    config: Config, clock: Clock = utcnow, *, with_process: bool = True
) -> CollectorRegistry:
    """Database gauges, plus this process's counters unless ``with_process`` is False."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(config, clock))
    if with_process:
        registry.register(_Forward())  # type: ignore[arg-type]
    return registry


# -- the daemon's endpoint ---------------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_app(config: Config, clock: Clock = utcnow) -> WSGIApp:
    """``/metrics`` (Prometheus text format) and ``/healthz`` (JSON, 200 or 503)."""
    metrics_app = make_wsgi_app(scrape_registry(config, clock))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path != "/healthz":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /healthz\n"]
        status, body = healthz(config, clock())
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                               ("Cache-Control", "no-store")])
        return [json.dumps(body, indent=1).encode()]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr for every scrape; DEBUG lines instead."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("metrics endpoint: " + format, *args)


def serve(config: Config, clock: Clock = utcnow) -> WSGIServer | None:
    """Start the endpoint in a daemon thread; None when ``metrics.port`` is null.

    ``shutdown()`` on the returned server stops it. A port already in use is a start-up error:
    a daemon whose health cannot be seen should not pretend all is well.
    """
    host, port = config.metrics.host, config.metrics.port
    if port is None:
        return None
    try:
        server = make_server(host, port, make_app(config, clock),
                             server_class=ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise ListenerError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; set metrics.port "
            "to a free port, or to null to turn the endpoint off"
        ) from exc
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.server_port)
    return server
