"""The stage functions. Cron (``run --once``) and the daemon run exactly these.

Each stage reads the work it has not done yet from the database, does it in batches and writes
each batch in one transaction; :class:`Runtime` wires config, time, the model and the sinks, and
records every stage run in the ``runs`` table.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from alerts.dispatch import DispatchResult, RetryPolicy, dispatch
from alerts.rules import RuleConfig, priority
from alerts.sinks import sink_class
from alerts.sinks.base import Sink
from classifiers.base import Classifier
from listener import metrics
from listener.config import Config
from listener.errors import ListenerError, RateLimited, SourceError, StorageError
from listener.models import Clock, Page, Score, Sleep, utcnow
from listener.query import Brand
from listener.sources import source_class
from listener.sources.base import Source, SourceConfig, SourceContext
from storage import db as store
from storage import outbox
from storage.tx import BUSY_TIMEOUT_MS, connect, immediate

log = logging.getLogger(__name__)


def collect(
    db: Database, source: Source, clock: Clock, stop: threading.Event | None = None,
    brands: Sequence[Brand] = (),
) -> int:
    """Fetch from the source's saved cursor; each page + its cursor is one transaction.

    With ``brands``, only posts matching one of their queries are kept (the cursor still moves
    past the others): every platform obeys the same query, whatever its own search returned.
    """
    new = 0
    for page in source.fetch(store.load_cursor(db, source.name)):
        if stop and stop.is_set():
            break  # shutting down: the page is not stored and its cursor not saved
        new += store.store_page(db, source.name, keep_for_brands(page, brands), clock())
        for bad in page.rejected:
            log.warning("source %s skipped record %s: %s", source.name, bad.where, bad.reason)
    return new


def backfill(
    db: Database, source: Source, since: datetime, clock: Clock, brands: Sequence[Brand] = (),
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Pull history back to ``since`` where the platform allows; never moves the live cursor.

    ``progress(fetched, new)`` is called after every stored page (the CLI draws a bar with it).
    """
    pull = getattr(source, "backfill", None)
    if pull is None:
        raise SourceError(f"source {source.name} ({source.type}) cannot backfill: its platform "
                          "offers no history beyond what every poll already fetches")
    new = 0
    for page in pull(since):
        added = store.store_page(db, source.name, replace(keep_for_brands(page, brands),
                                                          cursor=None), clock())
        new += added
        if progress is not None:
            progress(len(page.posts), added)
    return new


def keep_for_brands(page: Page, brands: Sequence[Brand]) -> Page:
    """The page with only posts some brand accepts, each tagged with its brand."""
    if not brands:
        return page
    by_name = {b.name: b for b in brands}
    kept = []
    for post in page.posts:
        own = by_name.get(post.brand or "")
        candidates = [own] if own else brands
        brand = next((b for b in candidates if b.accepts(post.text, post.lang, post.author)), None)
        if brand is not None:
            kept.append(post if post.brand == brand.name else replace(post, brand=brand.name))
    return replace(page, posts=kept)


def classify(
    db: Database, classifier: Classifier, clock: Clock, *, batch_size: int = 256,
    stop: threading.Event | None = None,
) -> int:
    """Score every post this model version has not scored yet."""
    done = 0
    while not (stop and stop.is_set()):
        rows = store.posts_to_score(db, classifier.name, classifier.version, batch_size)
        if not rows:
            break
        with metrics.CLASSIFIER_BATCH.time():
            predictions = classifier.predict([r["text"] for r in rows])
        scores = [
            (r["id"], _score(p, classifier), r["lang"]) for r, p in zip(rows, predictions, strict=True)
        ]
        done += store.save_scores(db, scores, clock())
    return done


def _score(p: Any, classifier: Classifier) -> Score:
    probs = p.probabilities
    return Score(
        sentiment=p.sentiment, p_negative=probs["negative"], p_neutral=probs["neutral"],
        p_positive=probs["positive"], urgency=p.urgency, model=classifier.name,
        model_version=classifier.version,
    )


def evaluate_rules(
    db: Database, rules: Iterable[RuleConfig], destinations: set[str], clock: Clock,
    *, batch_size: int = 500,
) -> int:
    """Run new scores through the rules; alerts + "evaluated" marks commit together.

    A dry-run rule records its alerts as ``dry_run``; alerts over a rule's ``max_alerts`` cap are
    recorded as ``suppressed``: both visible in `listener alerts list`, neither ever sent.
    Alerts decided in a rule's quiet hours are ``held`` until the reports stage rolls them up.
    """
    active = [r for r in rules if r.enabled]
    added = 0
    while rows := store.scores_to_evaluate(db, batch_size):
        now = clock()  # decision time = created_at: a held alert lies inside its quiet period
        caps = _Caps(db, now)
        alerts = []
        for row in rows:
            if row["duplicate_of"] is not None:
                continue  # a cross-post of a post that already went through the rules
            post, score = store.post_from_row(row), store.score_from_row(row)
            for rule in active:
                if not rule.when.matches(post, score):
                    continue
                alerts += [
                    outbox.NewAlert(rule.name, dest, row["id"], row["score_id"], post.key,
                                    priority(score, post), caps.status(rule, dest))
                    for dest in rule.destinations if dest in destinations
                ]
        added += outbox.enqueue(db, alerts, [r["score_id"] for r in rows], now)
    return added


class _Caps:
    """Counts alerts per (rule, destination) in each rule's window, this batch included."""

    def __init__(self, db: Database, now: datetime) -> None:
        self.db, self.now = db, now
        self.counts: dict[tuple[str, str], int] = {}

    def status(self, rule: RuleConfig, destination: str) -> str:
        if rule.dry_run:
            return outbox.DRY_RUN
        if rule.quiet_hours is not None and rule.quiet_hours.contains(self.now):
            return outbox.HELD  # one roll-up report later: no cap needed, none counted
        if rule.max_alerts is None:
            return outbox.PENDING
        key = (rule.name, destination)
        if key not in self.counts:
            since = self.now - timedelta(seconds=rule.max_alerts.per_seconds)
            self.counts[key] = outbox.sent_since(self.db, rule.name, destination, since)
        if self.counts[key] >= rule.max_alerts.count:
            return outbox.SUPPRESSED
        self.counts[key] += 1
        return outbox.PENDING


@dataclass
class Runtime:
    """Everything the stages need, built once per process from the config."""

    config: Config
    clock: Clock = utcnow
    sleep: Sleep = time.sleep
    strict: bool = False  # tests: re-raise instead of logging and going on
    sink_factory: Callable[[Any], Sink] | None = None  # --dry-run swaps in a recording sink
    stop: threading.Event = field(default_factory=threading.Event)
    preloaded: Classifier | None = None  # tests share one loaded model between runtimes
    busy_timeout_ms: int = BUSY_TIMEOUT_MS  # tests: give up on a locked database sooner
    _classifier: Classifier | None = field(default=None, init=False, repr=False)
    _sinks: dict[str, Sink] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # its own lock: dispatch must not wait seconds for the model to load in another thread
    _sinks_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # run records the database refused (locked, disk full); written by the next stage that can
    _unrecorded: list[Callable[[Database], None]] = field(
        default_factory=list, init=False, repr=False)

    def db(self) -> Database:
        """A new connection: one per job call, because sqlite3 connections are per thread."""
        return connect(self.config.db_path, self.busy_timeout_ms)

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
        conn = store.open_db(self.config.db_path)
        try:  # a locked or full database only delays this cosmetic fix to the next start
            closed = store.close_interrupted_runs(conn, self.clock())
            log.log(logging.WARNING if closed else logging.DEBUG, "%d unfinished run(s) of a "
                    "previous process marked interrupted", closed)
        except sqlite3.OperationalError as exc:
            log.warning("could not mark unfinished runs as interrupted: %s", exc)
        finally:
            conn.close()

    @property
    def classifier(self) -> Classifier:
        with self._lock:
            if self._classifier is None and self.preloaded is not None:
                self._classifier = self.preloaded
            if self._classifier is None:
                from classifiers.loader import load_classifier

                settings = self.config.classifier
                self._classifier = load_classifier(
                    settings.model, batch_size=settings.batch_size, device=settings.device,
                    labels=settings.labels, urgency=settings.urgency, backend=settings.backend,
                    cache_dir=settings.cache_path(self.config.base_dir),
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

    def close(self) -> None:
        for sink in (self._sinks or {}).values():
            sink.close()

    # -- stage runners: one connection, one `runs` row, errors contained unless strict --

    def run_collect(self, source: Source) -> int | None:
        """Collect unless the source is paused; a rate limit pauses it, it is not a failure."""
        brands = self.brands_for(next(c for c in self.config.sources if c.name == source.name))

        def work(db: Database) -> int:
            until = store.pause_end(db, source.name, self.clock())
            if until is not None and until > self.clock():
                log.info("source %s paused until %s", source.name, until.isoformat())
                return 0
            try:
                new = collect(db, source, self.clock, self.stop, brands)
            except RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                resume = self.clock() + timedelta(seconds=wait)
                store.pause_source(db, source.name, resume, str(exc), self.clock())
                log.warning("source %s rate-limited, paused until %s: %s", source.name,
                            resume.isoformat(), exc)
                return 0
            if until is not None:
                store.pause_source(db, source.name, None, "", self.clock())
            return new

        return self._stage("collect", source.name, work)

    def run_classify(self) -> int | None:
        size = max(self.config.classifier.batch_size * 8, 64)
        return self._stage("classify", "", lambda db: classify(
            db, self.classifier, self.clock, batch_size=size, stop=self.stop))

    def run_rules(self) -> int | None:
        names = {d.name for d in self.config.destinations}
        return self._stage("rules", "", lambda db: evaluate_rules(
            db, self.config.rules, names, self.clock))

    def run_reports(self) -> int | None:
        """Alerts about many posts at once: spikes, digests, alerts held over quiet hours."""
        from alerts.digest import run_digests
        from alerts.spikes import run_spikes

        names = {d.name for d in self.config.destinations}

        def work(db: Database) -> int:
            now = self.clock()
            return (run_spikes(db, self.config.spikes, names, now, self.config.brands)
                    + run_digests(db, self.config.digests, names, now,
                                  brands=list(self.config.brands), rules=self.config.rules))

        return self._stage("reports", "", work)

    def run_dispatch(self, wait_up_to: float = 0.0) -> int | None:
        d = self.config.dispatch
        policy = RetryPolicy(d.max_attempts, d.backoff_initial, d.backoff_max)

        def go(db: Database) -> int:
            result: DispatchResult = dispatch(
                db, self.sinks, policy, clock=self.clock, sleep=self.sleep,
                wait_up_to=wait_up_to, strict=self.strict, stop=self.stop)
            return result.items

        return self._stage("dispatch", "", go)

    def _stage(self, stage: str, target: str, work: Callable[[Database], int]) -> int | None:
        """Run one stage; returns items processed, or None if it failed (logged, recorded)."""
        db = self.db()
        run: tuple[str, str, datetime] = (stage, target, self.clock())
        run_id: int | None = None
        try:
            run_id = store.start_run(db, *run)
            self._record_late(db)
            items = work(db)
        except Exception as exc:
            self._finish(db, run_id, run, 0, f"{type(exc).__name__}: {exc}")
            metrics.record_stage(stage, target, None)
            if self.strict or not isinstance(exc, ListenerError | OSError):
                log.exception("stage %s %s failed", stage, target)
            else:
                log.error("stage %s %s failed: %s", stage, target, exc)
            if self.strict:
                raise
            return None
        else:
            self._finish(db, run_id, run, items)
            metrics.record_stage(stage, target, items)
            return items
        finally:
            db.close()

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

    def run_once(self) -> bool:
        """Every stage once, in order; True when all succeeded (cron's exit status)."""
        self.migrate()
        ok = all([self.run_collect(s) is not None for s in self.sources()])
        ok = self.run_classify() is not None and ok
        ok = self.run_rules() is not None and ok
        ok = self.run_reports() is not None and ok
        ok = self.run_dispatch(self.config.dispatch.once_max_wait) is not None and ok
        return ok
