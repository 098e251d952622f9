"""The daemon: APScheduler at the edge, the plain stage functions as jobs.

Memory job store (schedule comes from config; durable state lives in our own tables), UTC,
``max_instances=1`` and ``coalesce`` so a slow job never piles up, and a misfire grace time of
about the job's interval because APScheduler's 1-second default silently skips runs.
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from listener.pipeline import Runtime

log = logging.getLogger(__name__)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """A scheduler with one collect job per enabled source plus classify, rules and dispatch."""
    sources = runtime.sources()
    scheduler = BlockingScheduler(
        timezone=UTC,
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=max(4, len(sources) + 3))},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    now = datetime.now(UTC)
    every = runtime.config.schedule

    def add(job_id: str, func: object, seconds: float, args: tuple = ()) -> None:
        scheduler.add_job(
            func, "interval", seconds=seconds, args=args, id=job_id, name=job_id,
            misfire_grace_time=max(1, int(seconds)), next_run_time=now,
            max_instances=1, coalesce=True,  # explicit: job_defaults apply only once started
        )

    for source in sources:
        add(f"collect:{source.name}", runtime.run_collect, _interval(runtime, source.name),
            (source,))
    add("classify", runtime.run_classify, every.classify_interval)
    add("rules", runtime.run_rules, every.rules_interval)
    add("reports", runtime.run_reports, every.reports_interval)
    add("dispatch", runtime.run_dispatch, every.dispatch_interval)
    return scheduler


def _interval(runtime: Runtime, name: str) -> float:
    return next(s.interval for s in runtime.config.sources if s.name == name)


def run_daemon(runtime: Runtime) -> None:
    """Run until SIGTERM/SIGINT; running jobs finish their current batch, then we exit."""
    runtime.migrate()
    scheduler = build_scheduler(runtime)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the current batch, then exiting",
                 signal.Signals(signum).name)
        runtime.stop.set()
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("daemon started: %s", ", ".join(job.id for job in scheduler.get_jobs()))
    try:
        scheduler.start()
    finally:
        runtime.close()
        log.info("daemon stopped")
