"""The metrics the stages bump as they work: definitions only, on a dedicated registry.

Kept apart from :mod:`listener.metrics` (which reads the database at scrape time and serves
``/metrics``) so that a stage that counts — dispatch, classify — imports prometheus_client's
counters and nothing of the configuration, the health checks or the HTTP server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from listener.core.models import parse_iso

REGISTRY = CollectorRegistry()
WORKER = Info(
    "listener_worker", "This process among the workers sharing the database: its worker id "
    "(host:pid:start, as `listener status` and the leases name it) and its stages.",
    registry=REGISTRY,
)
POSTS_COLLECTED = Counter(
    "listener_posts_collected", "New posts stored, per source (re-collected posts not counted).",
    ["source"], registry=REGISTRY,
)
SOURCE_ERRORS = Counter(
    "listener_source_errors", "Polls of a source that failed (rate-limit pauses are not failures).",
    ["source"], registry=REGISTRY,
)
STAGE_RUNS = Counter(
    "listener_stage_runs", "Stage runs by outcome (ok or error).", ["stage", "status"],
    registry=REGISTRY,
)
CLASSIFIER_BATCH = Histogram(
    "listener_classifier_batch_seconds",
    "Seconds per classify batch: one predict() call over up to classifier.batch_size x 8 posts.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "listener_delivery_attempts",
    "Delivery attempts by destination and outcome (delivered, retry, failed, rate_limited).",
    ["destination", "outcome"], registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "listener_alert_delivery_latency_seconds",
    "Seconds from a post's collection to the delivery of its alert (classify, rules, outbox and "
    "retries included).",
    ["destination"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400),
    registry=REGISTRY,
)


def record_stage(stage: str, target: str, items: int | None) -> None:
    """One finished stage run; ``items`` is None when it failed."""
    STAGE_RUNS.labels(stage, "error" if items is None else "ok").inc()
    if stage != "collect":
        return
    if items is None:
        SOURCE_ERRORS.labels(target).inc()
    else:
        POSTS_COLLECTED.labels(target).inc(items)


def record_delivery(destination: str, outcome: str, collected_at: str | None = None,
                    delivered_at: float | None = None) -> None:
    """One delivery attempt; a delivered post alert also feeds the latency histogram."""
    DELIVERY_ATTEMPTS.labels(destination, outcome).inc()
    if collected_at and delivered_at is not None:
        latency = delivered_at - parse_iso(collected_at).timestamp()
        DELIVERY_LATENCY.labels(destination).observe(max(0.0, latency))
