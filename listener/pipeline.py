"""The stage functions. Cron (``run --once``) and the daemon run exactly these.

Each stage reads the work it has not done yet from the database, does it in batches and writes
each batch in one transaction; :class:`Runtime` wires config, time, the model and the sinks, and
records every stage run in the ``runs`` table.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from alerts.dispatch import Claim, DispatchResult, RetryPolicy, dispatch, paced
from alerts.replies.base import ReplyWriter
from alerts.replies.registry import build_writers
from alerts.replies.send import Sending, send_replies
from alerts.rules_stage import RulesContext, RulesOutcome, evaluate_rules
from alerts.similarity import vectorizer
from alerts.sinks import sink_class
from alerts.sinks.base import Sink
from classifiers.base import Classifier
from classifiers.routing import LanguageRouter
from listener import retraining
from listener.classify_stage import classify
from listener.config import Config
from listener.core import instruments
from listener.core.deadline import expire_all, install
from listener.core.errors import (
    ListenerError,
    RateLimited,
    StorageError,
)
from listener.core.language import detect
from listener.core.models import Clock, Sleep, utcnow
from listener.core.netguard import endpoints, private_allowed
from listener.core.query import Brand
from listener.retraining import models_dir_for
from listener.sources import source_class
from listener.sources.base import Source, SourceConfig, SourceContext
from listener.sources.collect import (
    collect,
)
from listener.workers import LEASE_SECONDS, QUIET_AFTER, STAGES, worker_id
from storage import db as store
from storage import leases, privacy, source_pauses, workers
from storage.engine import database_errors
from storage.tx import BUSY_TIMEOUT_MS, connect, immediate

log = logging.getLogger(__name__)
BEAT_EVERY = 5.0  # seconds between two progress marks of one run (a write each)
RETENTION_LEASE = "job:retention"  # one worker at a time erases old posts
RETENTION_CHECK_SECONDS = 3600.0  # how often the daemon asks whether retention is due
SYSTEM_ACTOR = "system"  # the audit log's name for what the daemon does on its own
RETRAIN_LEASE = "job:retrain"  # one worker at a time retrains from corrections


@dataclass
class Runtime:
    """Everything the stages need, built once per process from the config."""

    config: Config
    clock: Clock = utcnow
    sleep: Sleep = time.sleep
    strict: bool = False  # tests: re-raise instead of logging and going on
    sink_factory: Callable[[Any], Sink] | None = None  # --dry-run swaps in a recording sink
    stop: threading.Event = field(default_factory=threading.Event)
    # tests share one loaded model between runtimes; a bare model is routed alone (its own
    # languages supported, the rest scored by it and flagged)
    preloaded: Classifier | LanguageRouter | None = None
    busy_timeout_ms: int = BUSY_TIMEOUT_MS  # tests: give up on a locked database sooner
    # a terminal's progress display (listener.progress), called (event, stage, target, count):
    # "start" (count None), "batch" (classify's running count), "done" (items), "failed" (None)
    progress: Callable[[str, str, str, int | None], None] | None = None
    stages: frozenset[str] = frozenset(STAGES)  # what this worker runs (--stages)
    worker: str = field(default_factory=worker_id)  # its name as a lease owner
    _classifier: LanguageRouter | None = field(default=None, init=False, repr=False)
    _sinks: dict[str, Sink] | None = field(default=None, init=False, repr=False)
    _writers: dict[str, ReplyWriter] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # its own lock: dispatch must not wait seconds for the model to load in another thread
    _sinks_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # run records the database refused (locked, disk full); written by the next stage that can
    _unrecorded: list[Callable[[Database], None]] = field(
        default_factory=list, init=False, repr=False)
    # the run each thread is in, for beat(): (connection, run id, monotonic time of last beat)
    _current: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def __post_init__(self) -> None:
        install()  # deadlines must know every socket, pooled ones included (listener.core.deadline)

    def shutdown(self) -> None:
        """Stop: stages end between two pages, batches or messages, and requests in flight
        are cut now rather than at their deadline (SIGTERM answers in seconds)."""
        self.stop.set()
        expire_all()

    @property
    def shared(self) -> bool:
        """Whether other workers may share the database (PostgreSQL): work is then claimed
        through leases. On SQLite the run lock makes this process the only one."""
        return self.config.storage.url is not None

    def beat(self) -> None:
        """The current thread's run made progress: mark it (at most every few seconds), so a
        run that made none for ``metrics.stuck_after`` shows as stuck; the stage's lease, if
        it holds one, is renewed with it."""
        current = getattr(self._current, "run", None)
        if current is None or current[1] is None:
            return
        db, run_id, last = current
        if time.monotonic() - last < BEAT_EVERY:
            return
        self._current.run = (db, run_id, time.monotonic())
        lease = getattr(self._current, "lease", None)
        try:
            if lease is not None:
                leases.take(db, lease, self.worker, self.clock(), LEASE_SECONDS)
            store.beat_run(db, run_id, self.clock())
        except StorageError as exc:  # progress marks are a courtesy: never fail the stage
            log.debug("could not mark progress of run %s: %s", run_id, exc)

    def db(self) -> Database:
        """A new connection: one per job call, because sqlite3 connections are per thread."""
        return connect(self.config.database, self.busy_timeout_ms)

    def reloaded(self, config: Config) -> Runtime:
        """This runtime for a re-read config (SIGHUP): same clock, sleep and stop event; new
        sources and sinks; the loaded model carries over unless the classifier settings changed."""
        same = config.classifier == self.config.classifier
        return replace(self, config=config,
                       preloaded=(self._classifier or self.preloaded) if same else None)

    def retire(self) -> None:
        """A reloaded runtime replaced this one: let go of the model (a job still running holds
        its own reference); the sinks stay open for such jobs until :meth:`close`."""
        self._classifier = self.preloaded = None

    def migrate(self) -> None:
        """Bring the schema up to date and close the runs a killed process left open (the
        caller holds the run lock, so none of them is still going)."""
        conn = store.open_db(self.config.database)
        try:  # a locked or full database only delays this cosmetic fix to the next start
            if self.shared:  # other workers' runs are going on: none of them is ours to close
                return
            closed = store.close_interrupted_runs(conn, self.clock())
            log.log(logging.WARNING if closed else logging.DEBUG, "%d unfinished run(s) of a "
                    "previous process marked interrupted", closed)
        except sqlite3.OperationalError as exc:
            log.warning("could not mark unfinished runs as interrupted: %s", exc)
        finally:
            conn.close()

    @property
    def classifier(self) -> LanguageRouter:
        """The configured model(s), routed by language (``classifier.model`` / ``models``)."""
        with self._lock:
            if self._classifier is None and self.preloaded is not None:
                loaded = self.preloaded
                self._classifier = (loaded if isinstance(loaded, LanguageRouter)
                                    else LanguageRouter({"*": loaded}, detect=detect))
            if self._classifier is None:
                from classifiers.loader import load_routed
                from classifiers.model_store import active_heads_dir

                settings = self.config.classifier
                self._classifier = load_routed(
                    settings.model, settings.models, detect=detect,
                    batch_size=settings.batch_size, device=settings.device,
                    labels=settings.labels, urgency=settings.urgency, backend=settings.backend,
                    cache_dir=settings.cache_path(self.config.base_dir),
                    heads_dir=active_heads_dir(models_dir_for(self.config)),
                )
            return self._classifier

    def sources(self) -> list[Source]:
        """Every enabled source, built; a missing library or credential raises here, at start."""
        return [self.build_source(cfg) for cfg in self.config.sources if cfg.enabled]

    def build_source(self, cfg: SourceConfig) -> Source:
        ctx = SourceContext(base_dir=self.config.base_dir, clock=self.clock, sleep=self.sleep,
                            brands=self.brands_for(cfg))
        return source_class(cfg.type)(cfg, ctx)

    def brands_for(self, cfg: SourceConfig) -> tuple[Brand, ...]:
        """The source's `brands`; searching sources default to every configured brand."""
        if cfg.brands is not None:
            return tuple(self.config.brands[name] for name in cfg.brands)
        if getattr(source_class(cfg.type), "searches", False):
            return tuple(self.config.brands.values())
        return ()

    @property
    def sinks(self) -> dict[str, Sink]:
        with self._sinks_lock:
            if self._sinks is None:
                build = self.sink_factory or (lambda cfg: sink_class(cfg.type)(cfg))
                self._sinks = {d.name: build(d) for d in self.config.destinations}
            return self._sinks

    @property
    def writers(self) -> dict[str, ReplyWriter]:
        """The reply accounts' writers, by account name (issue 18)."""
        with self._sinks_lock:
            if self._writers is None:
                timeout = min(30.0, self.config.dispatch.send_deadline)
                self._writers = build_writers(self.config.reply_accounts, timeout)
            return self._writers

    def close(self) -> None:
        for sink in (self._sinks or {}).values():
            sink.close()
        for writer in (self._writers or {}).values():
            writer.close()

    # -- stage runners: one connection, one `runs` row, errors contained unless strict --

    def run_collect(self, source: Source) -> int | None:
        """Collect unless the source is paused; a rate limit pauses it, it is not a failure."""
        cfg = next(c for c in self.config.sources if c.name == source.name)
        brands = self.brands_for(cfg)

        def work(db: Database) -> int:
            until = source_pauses.pause_end(db, source.name, self.clock())
            if until is not None and until > self.clock():
                log.info("source %s paused until %s", source.name, until.isoformat())
                return 0
            try:
                new = collect(db, source, self.clock, self.stop, brands,
                              tuple(self.config.brands.values()),
                              page_deadline=cfg.page_deadline, beat=self.beat)
            except RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                resume = self.clock() + timedelta(seconds=wait)
                source_pauses.pause_source(db, source.name, resume, str(exc), self.clock())
                log.warning("source %s rate-limited, paused until %s: %s", source.name,
                            resume.isoformat(), exc)
                return 0
            if until is not None:
                source_pauses.pause_source(db, source.name, None, "", self.clock())
            return new

        return self._stage("collect", source.name, work, lease=f"source:{source.name}")

    def run_classify(self) -> int | None:
        """A backlog is pipelined on a GPU (``classifier.pipelined``, listener.classify_stage):
        its reader thread opens a connection of its own here, the scores are saved on the
        stage's."""
        settings = self.config.classifier
        size = settings.stage_batch or max(settings.batch_size * 8, 64)
        pipelined = settings.pipelined
        if pipelined is None:  # where the model runs: resolve_device's answer, without torch
            from classifiers.loader import NVIDIA_DRIVER

            pipelined = settings.device.startswith("cuda") or (
                settings.device == "auto" and NVIDIA_DRIVER.exists())
        from classifiers.model_store import rescore_floor

        # a model promoted from corrections re-scores recent posts only (listener.retraining)
        floor = rescore_floor(models_dir_for(self.config))
        return self._stage("classify", "", lambda db: classify(
            db, self.classifier, self.clock, batch_size=size, stop=self.stop,
            on_batch=self._classified, owner=self.worker if self.shared else None,
            connect=self.db if pipelined else None, write_size=settings.write_batch,
            scorers=settings.scorers, after=floor, writers=settings.writers))

    def _classified(self, done: int) -> None:
        self.beat()
        self._report("batch", "classify", "", done)

    def rules_context(self) -> RulesContext:
        """Incident grouping needs the brands and the model's sentence vectors; the model is
        asked for them only when a batch has posts to compare (classify loaded it by then)."""
        return RulesContext(
            incidents=self.config.incidents, brands=self.config.brands,
            vectorize=lambda texts: vectorizer(self.classifier)(texts),
            queue_url=self.config.serve.dashboard_url,
        )

    def run_rules(self, outcome: RulesOutcome | None = None) -> int | None:
        names = {d.name for d in self.config.destinations}
        return self._stage("rules", "", lambda db: evaluate_rules(
            db, self.config.rules, names, self.clock, context=self.rules_context(),
            outcome=outcome, beat=self.beat), lease="stage:rules")

    def run_reports(self) -> int | None:
        """Alerts about many posts at once: spikes, digests, alerts held over quiet hours."""
        from alerts.digest import run_digests
        from alerts.incidents import announce_due
        from alerts.spikes import run_spikes

        names = {d.name for d in self.config.destinations}

        def work(db: Database) -> int:
            now = self.clock()
            incidents = (announce_due(db, self.config.incidents, names, now,
                                      self.config.serve.dashboard_url, self.config.brands)
                         if self.config.incidents.enabled else 0)
            return (incidents
                    + run_spikes(db, self.config.spikes, names, now, self.config.brands)
                    + run_digests(db, self.config.digests, names, now,
                                  brands=list(self.config.brands), rules=self.config.rules))

        return self._stage("reports", "", work, lease="stage:reports")

    def run_retention(self) -> int | None:
        """Erase the text of posts older than ``storage.retention_days`` (storage.privacy),
        once a day: the daemon's job checks every hour whether the last complete run (its
        audit entry) is a day old; on a shared database the ``job:retention`` lease makes one
        worker do it and the audit entry tells the others it is done. Returns posts erased."""
        days = self.config.storage.retention_days
        if days is None:
            return 0
        try:  # not due (the usual answer): no run recorded, no lease taken
            db = self.db()
            try:
                if not privacy.retention_due(db, self.clock()):
                    return 0
            finally:
                db.close()
        except database_errors() as exc:
            log.debug("retention: cannot read when it last ran (%s); trying the run", exc)

        def work(db: Database) -> int:
            now = self.clock()
            if not privacy.retention_due(db, now):  # another worker did it meanwhile
                return 0
            erased = privacy.erase_older_than(db, now - timedelta(days=days), now,
                                              actor=SYSTEM_ACTOR, beat=self.beat,
                                              stop=self.stop)
            log.info("retention: erased %d post(s) older than %d days", erased.posts, days)
            return erased.posts

        return self._stage("retention", "", work, lease=RETENTION_LEASE)

    def run_retrain(self) -> int | None:
        """Retrain the heads from reviewers' corrections every ``classifier.retrain.every_hours``
        (listener.retraining): the job asks hourly whether it is due (the last ``model.retrain``
        audit entry); one worker at a time (``job:retrain``). A promoted model is served from
        the next classify run on. Returns 1 when a model was promoted."""
        section = self.config.classifier.retrain
        if section is None:
            return 0

        def work(db: Database) -> int:
            now = self.clock()
            if not retraining.retrain_due(db, now, timedelta(hours=section.every_hours)):
                return 0
            outcome = retraining.retrain_from_feedback(
                db, models_dir_for(self.config), retraining.data_dir_for(self.config), now,
                actor=SYSTEM_ACTOR, settings=retraining.settings_for(self.config),
                held_out_percent=section.held_out_percent, rescore_hours=section.rescore_hours)
            if outcome.promoted:
                with self._lock:  # the next classify run loads the promoted model
                    self._classifier = None if self.preloaded is None else self._classifier
            return int(outcome.promoted)

        return self._stage("retrain", "", work, lease=RETRAIN_LEASE)

    def run_dispatch(self, wait_up_to: float = 0.0, destination: str | None = None
                     ) -> int | None:
        """Deliver due alerts. With ``destination`` (the daemon: one job per destination) that
        destination's only; without (run --once) every destination at once, each in its own
        thread with its own connection: a slow destination never delays another's alerts."""
        if destination is not None:
            return self._stage("dispatch", destination,
                               lambda db: self._dispatch_one(db, destination, wait_up_to))
        return self._stage("dispatch", "", lambda db: self._dispatch_all(db, wait_up_to))

    def run_replies(self) -> int | None:
        """Send the replies people wrote (issue 18): part of dispatch, its own job, so a slow
        platform delays only its replies; every worker sends, each reply under its lease."""
        if not self.config.reply_accounts:
            return 0
        return self._stage("dispatch", "replies", self._send_replies)

    def _send_replies(self, db: Database) -> int:
        d = self.config.dispatch
        accounts = self.config.reply_accounts
        how = Sending(self.worker, max(LEASE_SECONDS, 2 * d.send_deadline), d.send_deadline,
                      endpoints={a.name: endpoints(a) for a in accounts},
                      allow_private=any(private_allowed(a) for a in accounts), stop=self.stop)
        result = send_replies(db, self.writers,
                              RetryPolicy(d.max_attempts, d.backoff_initial, d.backoff_max),
                              how, clock=self.clock)
        return result.sent + result.found

    def _dispatch_one(self, db: Database, name: str, wait_up_to: float) -> int:
        """One destination's pass. With other workers on the database, a destination that
        needs pacing (``min_interval``: Slack's one message a second) is sent to only while
        this worker holds its lease: one sender at a time keeps the pacing. Any other is sent
        to by every worker at once, each claiming the groups it sends (:mod:`storage.claims`);
        a Retry-After holds every worker either way (the destination's alerts wait in the
        outbox, and a claimed group is checked again just before it is sent)."""
        sink = self.sinks.get(name)
        if sink is None:
            return 0  # off (optional, secret unset): its alerts wait
        if not self.shared:
            return self._send_due(db, name, sink, wait_up_to)
        if not paced(sink):
            # a claim outlives one attempt, which may take up to send_deadline
            seconds = max(LEASE_SECONDS, 2 * self.config.dispatch.send_deadline)
            return self._send_due(db, name, sink, wait_up_to, Claim(self.worker, seconds))
        lease = f"dispatch:{name}"
        if not leases.take(db, lease, self.worker, self.clock(), LEASE_SECONDS):
            log.debug("dispatch %s: another worker holds %s", name, lease)
            return 0
        previous = getattr(self._current, "lease", None)
        self._current.lease = lease  # renewed by beat() after every message
        sent = 0
        try:
            sent = self._send_due(db, name, sink, wait_up_to)
            return sent
        finally:
            self._current.lease = previous
            if sent and not self.stop.is_set():  # the next sender, maybe another worker,
                self.sleep(float(getattr(sink, "min_interval", 0.0)))  # keeps the gap too
            self._release(db, lease)

    def _send_due(self, db: Database, name: str, sink: Sink, wait_up_to: float,
                  claim: Claim | None = None) -> int:
        d = self.config.dispatch
        settings = next(c for c in self.config.destinations if c.name == name)
        result: DispatchResult = dispatch(
            db, {name: sink}, RetryPolicy(d.max_attempts, d.backoff_initial, d.backoff_max),
            clock=self.clock, sleep=self.sleep, wait_up_to=wait_up_to, strict=self.strict,
            stop=self.stop, send_deadline=d.send_deadline, beat=self.beat,
            endpoints=endpoints(settings), allow_private=private_allowed(settings),
            claim=claim)
        return result.items

    def _dispatch_all(self, db: Database, wait_up_to: float) -> int:
        """One pass per destination, in parallel threads; the first failure is raised after all
        of them ended (each was logged where it happened)."""
        names = list(self.sinks)
        if len(names) <= 1:
            return sum(self._dispatch_one(db, name, wait_up_to) for name in names)
        done: dict[str, int] = {}
        failed: list[BaseException] = []

        def work(name: str) -> None:
            conn = self.db()
            if run is not None:  # beats of this thread go to the same run, on its connection
                self._current.run = (conn, run[1], 0.0)
            try:
                done[name] = self._dispatch_one(conn, name, wait_up_to)
            except BaseException as exc:  # handed to the stage below, which records it
                log.error("dispatch to %s failed: %s", name, exc)
                failed.append(exc)
            finally:
                conn.close()

        run = getattr(self._current, "run", None)
        threads = [threading.Thread(target=work, args=(n,), name=f"dispatch-{n}") for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]
        return sum(done.values())

    def _stage(self, stage: str, target: str, work: Callable[[Database], int],
               lease: str | None = None) -> int | None:
        """Run one stage; returns items processed, or None if it failed (logged, recorded).

        With ``lease`` and other workers on the database, the stage runs only while this worker
        holds the lease (renewed by :meth:`beat`): another worker doing it now means 0 items
        here, and no run recorded."""
        self._report("start", stage, target, None)
        try:
            db = self.db()
        except database_errors() as exc:  # the database is down: this run fails, said once
            self._report("failed", stage, target, None)
            instruments.record_stage(stage, target, None)
            log.error("stage %s %s failed: cannot reach the database: %s", stage, target, exc)
            if self.strict:
                raise
            return None
        run: tuple[str, str, datetime] = (stage, target, self.clock())
        run_id: int | None = None
        held = None
        try:
            if lease is not None and self.shared:
                if not leases.take(db, lease, self.worker, self.clock(), LEASE_SECONDS):
                    log.debug("%s %s: another worker holds %s", stage, target, lease)
                    self._report("done", stage, target, 0)
                    return 0
                held = self._current.lease = lease
            # whose run it is, on a shared database: a live worker closes it if this one dies
            run_id = store.start_run(db, *run, worker=self.worker if self.shared else None)
            self._current.run = (db, run_id, time.monotonic())
            self._record_late(db)
            items = work(db)
        except Exception as exc:
            self._report("failed", stage, target, None)  # ends the progress line before the log
            self._finish(db, run_id, run, 0, f"{type(exc).__name__}: {exc}")
            instruments.record_stage(stage, target, None)
            if self.strict or not isinstance(exc, ListenerError | OSError):
                log.exception("stage %s %s failed", stage, target)
            else:
                log.error("stage %s %s failed: %s", stage, target, exc)
            if self.strict:
                raise
            return None
        else:
            self._finish(db, run_id, run, items)
            instruments.record_stage(stage, target, items)
            self._report("done", stage, target, items)
            return items
        finally:
            self._current.run = self._current.lease = None
            if held is not None:
                self._release(db, held)
            db.close()

    def _release(self, db: Database, lease: str) -> None:
        """Give the lease back (failing that, it expires: the work is only delayed)."""
        try:
            leases.release(db, [lease], self.worker)
        except database_errors() as exc:
            log.warning("could not release %s (it expires in %.0fs): %s", lease, LEASE_SECONDS,
                        exc)

    def _report(self, event: str, stage: str, target: str, count: int | None) -> None:
        """Tell the progress display, if any; outside tests a broken display never fails a stage."""
        if self.progress is None:
            return
        try:
            self.progress(event, stage, target, count)
        except Exception:
            if self.strict:
                raise
            log.debug("progress display failed", exc_info=True)

    def _finish(self, db: Database, run_id: int | None, run: tuple[str, str, datetime],
                items: int, error: str | None = None) -> None:
        """Record a stage run (``run_id`` None: its start could not be recorded either). If the
        database refuses (locked by another process, disk full), the record waits in memory."""
        finished = self.clock()

        def write(conn: Database) -> None:
            with immediate(conn):
                rid = store.start_run(conn, *run) if run_id is None else run_id
                store.finish_run(conn, rid, finished, items=items, error=error)

        try:
            write(db)
        except StorageError as exc:
            log.error("stage %s %s: cannot record the run yet (%s)", run[0], run[1], exc)
            self._unrecorded.append(write)

    def _record_late(self, db: Database) -> None:
        """Write the run records an unwritable database refused, oldest first (list operations
        are atomic, so stages in other threads may do this at the same time)."""
        while True:
            try:
                write = self._unrecorded.pop(0)
            except IndexError:  # none left (another thread may have taken the last one)
                return
            try:
                write(db)
            except StorageError:
                self._unrecorded.insert(0, write)
                return

    # -- the worker: registered for `listener status`, its leases freed when it stops --

    def register_worker(self) -> None:
        """Say this worker started (host, pid, stages); a broken database only costs the entry
        in `listener status` — the stages report it themselves."""
        instruments.WORKER.info({"worker": self.worker, "stages": ",".join(
            s for s in STAGES if s in self.stages)})
        self._worker_write(lambda db: workers.register(
            db, self.worker, socket.gethostname(), os.getpid(),
            [s for s in STAGES if s in self.stages], self.clock()))

    def worker_heartbeat(self) -> int:
        """This worker's sign of life; on a shared database also the housekeeping of the dead:
        runs of workers gone quiet closed as interrupted (else they would look stuck for ever),
        leases expired a while ago deleted, workers unheard of for a week forgotten."""
        def beat(db: Database) -> None:
            now = self.clock()
            workers.beat(db, self.worker, now)
            if self.shared:
                workers.close_runs_of_gone(db, now, now - timedelta(seconds=QUIET_AFTER))
                leases.purge_expired(db, now - timedelta(seconds=LEASE_SECONDS))
                workers.forget_stopped(db, now - timedelta(days=7))

        self._worker_write(beat)
        return 0

    def unregister_worker(self) -> None:
        """A clean stop: what this worker held is free at once, not when its leases expire."""
        def stop(db: Database) -> None:
            leases.release_all(db, self.worker)
            workers.stopped(db, self.worker, self.clock())
            workers.forget_stopped(db, self.clock() - timedelta(days=7))

        self._worker_write(stop)

    def _worker_write(self, write: Callable[[Database], None]) -> None:
        try:
            db = self.db()
            try:
                write(db)
            finally:
                db.close()
        except database_errors() as exc:
            log.warning("could not record this worker in the database: %s", exc)

    def run_once(self) -> bool:
        """This worker's stages once, in order; True when all succeeded (cron's exit status)."""
        self.migrate()
        self.register_worker()
        try:
            return self._stages_once()
        finally:
            self.unregister_worker()

    def _stages_once(self) -> bool:
        ok = True
        if "collect" in self.stages:
            ok = all([self.run_collect(s) is not None for s in self.sources()])
        if "classify" in self.stages:
            ok = self.run_classify() is not None and ok
        if "rules" in self.stages:
            ok = self.run_rules() is not None and ok
        if "reports" in self.stages:
            ok = self.run_reports() is not None and ok
        if "dispatch" in self.stages:
            ok = self.run_dispatch(self.config.dispatch.once_max_wait) is not None and ok
            ok = self.run_replies() is not None and ok
        if self.config.storage.retention_days is not None:
            ok = self.run_retention() is not None and ok
        return ok
