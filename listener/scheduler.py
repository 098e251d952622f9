"""The daemon: APScheduler at the edge, the plain stage functions as jobs.

Memory job store (schedule comes from config; durable state lives in our own tables), UTC,
``max_instances=1`` and ``coalesce`` so a slow job never piles up, and a misfire grace time of
about the job's interval because APScheduler's 1-second default silently skips runs.

Every destination has its own dispatch job (``dispatch:<name>``): a destination that answers
slowly, or not at all, delays only its own alerts, and each attempt is cut off after
``dispatch.send_deadline`` seconds (a poll's page after the source's ``page_deadline``).
SIGTERM sets the stop event and cuts requests in flight, so the daemon exits in seconds.

Stages are chained: a collect that stored new posts wakes classify at once, a classify that
scored posts wakes rules, and rules or reports that queued alerts wake dispatch — so at the
default intervals an alert still leaves seconds after its post was collected. The intervals
stay as the fallback (and for work left by a failed or interrupted run).

SIGHUP re-reads the config file: on success the jobs, sources and sinks are rebuilt from it (the
loaded model is kept unless the classifier settings changed); on any error the daemon says why
and keeps running on the config it had.
"""

from __future__ import annotations

import logging
import signal
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from listener.config import load_config
from listener.core.errors import ConfigError, ListenerError
from listener.pipeline import RETENTION_CHECK_SECONDS, Runtime
from listener.sources.base import Source

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 30.0  # a worker's sign of life in `workers` (listener status)


def build_scheduler(runtime: Runtime) -> BlockingScheduler:
    """A scheduler with one collect job per enabled source plus classify, rules and dispatch."""
    sources = runtime.sources()
    scheduler = BlockingScheduler(
        timezone=UTC,
        jobstores={"default": MemoryJobStore()},
        # every job can run at once: sources, classify, rules, reports, the worker's
        # heartbeat, retention, replies, one dispatch per destination (a slow one must not
        # take another's thread)
        executors={"default": ThreadPoolExecutor(
            max_workers=len(sources) + 7 + max(1, len(runtime.config.destinations)))},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    add_jobs(scheduler, runtime, sources)
    return scheduler


# which job a job's work feeds: woken as soon as the first one produced something
NEXT_JOB = {"collect": "classify", "classify": "rules", "rules": "dispatch", "reports": "dispatch"}


class Chain:
    """Runs a job's successor now, instead of at its next interval, when the job did work.

    A job already running when woken (``max_instances`` is 1, so APScheduler would skip the
    extra run with a warning) is marked and woken again the moment it finishes, so posts that
    arrive during a long classify never wait a whole interval.
    """

    def __init__(self, scheduler: BaseScheduler) -> None:
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._again: set[str] = set()

    def job(self, job_id: str, func: Callable[..., int | None]) -> Callable[..., int | None]:
        """``func`` wrapped: marks the job running, then wakes what its work feeds."""
        successor = NEXT_JOB.get(job_id.split(":")[0])

        def run(*args: Any) -> int | None:
            with self._lock:
                self._running.add(job_id)
            items = None
            try:
                items = func(*args)
            finally:
                with self._lock:
                    self._running.discard(job_id)
                    again = job_id in self._again
                    self._again.discard(job_id)
                if again:
                    self.wake(job_id)
                if items and successor:
                    self.wake(successor)
            return items

        return run

    def wake(self, job_id: str) -> None:
        """Make ``job_id`` due now (or once more after its current run); a stage name with
        one job per target ("dispatch": one per destination) wakes all of them."""
        family = [job.id for job in self.scheduler.get_jobs()
                  if job.id.startswith(f"{job_id}:")]
        for one in family or [job_id]:
            self._wake_one(one)

    def _wake_one(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._running:
                self._again.add(job_id)
                return
        try:
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
        except JobLookupError:  # a reload is swapping the jobs, or we are shutting down
            pass


_chains: weakref.WeakKeyDictionary[BaseScheduler, Chain] = weakref.WeakKeyDictionary()


def add_jobs(scheduler: BaseScheduler, runtime: Runtime, sources: list[Source]) -> None:
    """The runtime's jobs, each due at once and then every its interval, chained."""
    now = datetime.now(UTC)
    every = runtime.config.schedule
    chain = _chains.setdefault(scheduler, Chain(scheduler))

    def add(job_id: str, func: Callable[..., int | None], seconds: float, args: tuple = ()) -> None:
        scheduler.add_job(
            chain.job(job_id, func), "interval", seconds=seconds, args=args, id=job_id, name=job_id,
            misfire_grace_time=max(1, int(seconds)), next_run_time=now,
            max_instances=1, coalesce=True,  # explicit: job_defaults apply only once started
        )

    stages = runtime.stages
    for source in sources if "collect" in stages else []:
        add(f"collect:{source.name}", runtime.run_collect, _interval(runtime, source.name),
            (source,))
    if "classify" in stages:
        add("classify", runtime.run_classify, every.classify_interval)
    if "rules" in stages:
        add("rules", runtime.run_rules, every.rules_interval)
    if "reports" in stages:
        add("reports", runtime.run_reports, every.reports_interval)
    for dest in runtime.config.destinations if "dispatch" in stages else []:
        # each its own job: one destination never waits for another
        add(f"dispatch:{dest.name}", runtime.run_dispatch, every.dispatch_interval,
            (0.0, dest.name))
    if "dispatch" in stages and runtime.config.reply_accounts:
        add("replies", runtime.run_replies, every.dispatch_interval)
    add("worker", runtime.worker_heartbeat, HEARTBEAT_SECONDS)
    if runtime.config.storage.retention_days is not None:  # runs once a day; asks hourly
        add("retention", runtime.run_retention, RETENTION_CHECK_SECONDS)
    if "classify" in stages and runtime.config.classifier.retrain is not None:  # asks hourly
        add("retrain", runtime.run_retrain, RETENTION_CHECK_SECONDS)


def _interval(runtime: Runtime, name: str) -> float:
    return next(s.interval for s in runtime.config.sources if s.name == name)


class Reloader:
    """Swaps the daemon's jobs for those of a re-read config; a bad config changes nothing.

    Old jobs still running finish on the runtime they started with. A new job never overlaps
    its predecessor: APScheduler counts running instances by job id, and the ids stay the same
    (so an old and a new dispatch never work on the outbox at once). Replaced runtimes are
    closed when the daemon stops, since a job may still be using their sinks.
    """

    def __init__(self, scheduler: BaseScheduler, runtime: Runtime) -> None:
        self.scheduler, self.runtime = scheduler, runtime
        self.retired: list[Runtime] = []
        self._lock = threading.Lock()  # two quick SIGHUPs reload one after the other

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """The handler runs in the main thread, maybe inside the scheduler's own locked loop:
        reload in a thread of its own."""
        threading.Thread(target=self.reload, name="config-reload", daemon=True).start()

    def reload(self) -> bool:
        """Re-read the config file; True when the new config is in force."""
        with self._lock:
            old = self.runtime
            try:
                fresh, sources = self._load(old)
            except Exception as exc:  # not even a bug may take the daemon down here
                if not isinstance(exc, ListenerError):
                    log.exception("config reload crashed")
                log.error("config reload failed: %s; keeping the previous config", exc)
                return False
            self.scheduler.remove_all_jobs()
            add_jobs(self.scheduler, fresh, sources)
            self.runtime = fresh
            old.retire()
            self.retired.append(old)
            for name, why in fresh.config.disabled.items():
                log.warning("destination '%s' is off: %s", name, why)
            log.info("config reloaded from %s: %s", fresh.config.path,
                     ", ".join(job.id for job in self.scheduler.get_jobs()))
            return True

    @staticmethod
    def _load(old: Runtime) -> tuple[Runtime, list[Source]]:
        config = load_config(old.config.path)
        if config.database != old.config.database:  # the run lock is held on the old database
            raise ConfigError(f"cannot change to {config.database} while the daemon runs; restart "
                              "it instead", file=str(config.path), key="storage.path")
        fresh = old.reloaded(config)
        sources = fresh.sources()  # a missing library or credential raises here, not later
        fresh.sinks  # noqa: B018 - built now for the same reason
        return fresh, sources

    def close(self) -> None:
        for runtime in (*self.retired, self.runtime):
            runtime.close()


def run_daemon(runtime: Runtime) -> None:
    """Run until SIGTERM/SIGINT; running jobs finish their current batch, then we exit."""
    runtime.migrate()
    runtime.register_worker()
    scheduler = build_scheduler(runtime)
    reloader = Reloader(scheduler, runtime)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the current batch, then exiting",
                 signal.Signals(signum).name)
        runtime.shutdown()  # the same stop event in every reloaded runtime; cuts requests
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reloader.on_signal)
    log.info("daemon started: %s", ", ".join(job.id for job in scheduler.get_jobs()))
    try:
        scheduler.start()
    finally:
        reloader.close()
        runtime.unregister_worker()
        log.info("daemon stopped")
