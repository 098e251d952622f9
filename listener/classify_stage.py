"""The classify stage: score every post the configured model version has not scored yet.

Apart from :mod:`listener.pipeline` (which wires the stages into a runtime) because it is the
one stage whose speed decides how much a deployment can watch: it reads posts, runs the model
and writes scores, and with other workers on the database it claims its batches first
(:mod:`storage.claims`).

Two ways through, the same scores either way:

* **in turn** — read a batch, score it, save it, again: what a small workload gets (the
  daemon's minute brings a few dozen posts), and any caller without a connection factory.
* **pipelined** — when the first read fills a whole batch and the caller can open
  connections: a *reader* thread reads (or claims) the next batch on a connection of its own
  while *scorer* threads (``scorers``, one by default) run the model on the current ones, and
  the calling thread saves the scores on the caller's connection, several batches in one
  transaction (up to ``write_size`` posts, or what :data:`WRITE_SECONDS` brought), or hands
  each transaction to one of ``writers`` threads with connections of their own (PostgreSQL
  writes batches of scores side by side, so several server processes share the writing). On a GPU
  the device, the tokeniser and the database then work at once instead of by turns. The
  queues between them hold a batch or two (:data:`WRITE_QUEUE`), so memory stays a few
  batches deep; ``stop`` is looked at before each read and each batch scored; ``on_batch``
  runs after each transaction, on the calling thread (the runtime's progress marks are kept
  per thread); claims are released once their scores are saved, and the claims of posts read
  but never saved (stop, failure) are given back at the end. The first error in any thread is
  the stage's, raised here once the threads have ended: a failed read ends the reading, and
  the batches read before it are still scored and saved; a failed model or write halts the
  stage, and every batch scored before it is still saved (unless the write failed).

Every thread has its own connection: neither engine's connections may cross threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from classifiers.base import Classifier
from classifiers.routing import LanguageRouter
from listener.core import instruments
from listener.core.models import Clock, Score
from listener.workers import LEASE_SECONDS
from storage import claims
from storage import db as store
from storage.db import Unscored
from storage.engine import Db, database_errors

log = logging.getLogger(__name__)

WRITE_SECONDS = 2.0  # scores wait at most this long for their transaction (then it is written)
WRITE_QUEUE = 2  # scored batches waiting for the writer before the scorers wait for it
_POLL = 0.25  # seconds a blocked thread waits before looking whether the stage halted

ScoreRow = tuple[int, Score, None]
T = TypeVar("T")
_END = object()  # a scorer's last item: nothing more will come from it


def classify(
    db: Db, classifier: LanguageRouter, clock: Clock, *, batch_size: int = 256,
    stop: threading.Event | None = None, on_batch: Callable[[int], None] | None = None,
    owner: str | None = None, connect: Callable[[], Db] | None = None,
    write_size: int | None = None, scorers: int = 1, after: int = 0, writers: int = 1,
) -> int:
    """Score every post this model version has not scored yet, each with the model for its
    language; ``on_batch(scored so far)`` after each saved transaction feeds a terminal's
    progress line (thousands of posts take half a minute). With ``owner`` (other workers share
    the database) each batch is claimed first (:mod:`storage.claims`) and released once saved.

    ``connect`` (a new connection to the same database) allows the pipelined way (module
    docstring) once a read fills ``batch_size``; ``write_size`` (default ``batch_size``) is the
    most posts saved in one transaction there, and ``scorers`` the threads calling the model at
    once (the model must then be thread-safe, as the bundled ones are); ``writers`` the
    threads saving transactions at once, each on a connection of its own (more than one only
    helps on PostgreSQL; SQLite writes one transaction at a time).

    ``after``: posts with this id or a lower one are never read, whatever they lack. A model
    promoted from reviewers' corrections records such a floor
    (``classifiers.model_store.rescore_floor``): its new version re-scores the recent posts and
    the unscored ones, not the whole history (which, read oldest first, would hold every new
    post back until millions of old ones were done)."""
    if batch_size < 1 or scorers < 1 or writers < 1:
        raise ValueError("batch_size, scorers and writers must be at least 1: "
                         f"{batch_size}, {scorers}, {writers}")
    stage = _Stage(db, classifier, clock, batch_size, owner, after)
    if stop is not None and stop.is_set():
        return 0
    first = stage.read(db, after)
    if connect is not None and len(first) >= batch_size:
        return _Pipeline(stage, first, connect, stop, on_batch,
                         max(write_size or batch_size, 1), scorers, writers).run()
    return _in_turn(stage, first, stop, on_batch)


class _Stage:
    """What both ways share: one model version, how a batch is read, scored and saved."""

    def __init__(self, db: Db, classifier: LanguageRouter, clock: Clock,
                 batch_size: int, owner: str | None, floor: int = 0) -> None:
        self.db, self.classifier, self.clock = db, classifier, clock
        self.batch_size, self.owner, self.floor = batch_size, owner, floor
        self.name, self.version = classifier.name, classifier.version

    def read(self, conn: Db, after: int) -> list[Unscored]:
        """The next batch: claimed with an owner (posts this worker holds are not offered
        again), else the unscored posts after id ``after`` (what was read is not read again);
        never a post at or below the stage's floor."""
        if self.owner is not None:
            return claims.posts_to_score(conn, self.name, self.version, self.batch_size,
                                         self.owner, self.clock(), LEASE_SECONDS,
                                         after=self.floor)
        return store.posts_to_score(conn, self.name, self.version, self.batch_size,
                                    after=max(after, self.floor))

    def score(self, posts: list[Unscored]) -> list[ScoreRow]:
        with instruments.CLASSIFIER_BATCH.time():
            # posts stored before languages were detected have none: the router detects them
            predictions = self.classifier.predict([p.text for p in posts],
                                                  [p.lang for p in posts])
        return [(post.id, _score(p, self.classifier), None)
                for post, p in zip(posts, predictions, strict=True)]

    def save(self, rows: list[ScoreRow], conn: Db | None = None) -> int:
        """One transaction of scores, then their claims released; how many were new.
        ``conn``: a writer thread's own connection (default the stage's)."""
        conn = conn or self.db
        saved = store.save_scores(conn, rows, self.clock())
        if self.owner is not None:
            self.release([pid for pid, _, _ in rows], conn)
        return saved

    def release(self, post_ids: list[int], conn: Db | None = None) -> None:
        if self.owner is not None and post_ids:
            claims.release_scored(conn or self.db, self.name, self.version, post_ids,
                                  self.owner)


def _in_turn(stage: _Stage, posts: list[Unscored], stop: threading.Event | None,
             on_batch: Callable[[int], None] | None) -> int:
    """Read, score, save, again (``posts``: the first batch, already read)."""
    done = 0
    while posts:
        done += stage.save(stage.score(posts))
        if on_batch is not None:
            on_batch(done)
        if stop is not None and stop.is_set():
            break
        posts = stage.read(stage.db, posts[-1].id)
    return done


class _Pipeline:
    """A reader thread, ``scorers`` scorer threads and the calling thread writing."""

    def __init__(self, stage: _Stage, first: list[Unscored], connect: Callable[[], Db],
                 stop: threading.Event | None, on_batch: Callable[[int], None] | None,
                 write_size: int, scorers: int, writers: int = 1) -> None:
        self.stage, self.connect, self.stop, self.on_batch = stage, connect, stop, on_batch
        self.write_size, self.scorers, self.writers = write_size, scorers, writers
        # transactions for the writer threads (``writers`` > 1), and whether any is left
        self.to_save: queue.Queue[list[ScoreRow] | object] = queue.Queue(maxsize=writers)
        self.savers_gone = threading.Event()
        self.savers_alive = 0
        self.to_score: queue.Queue[list[Unscored] | object] = queue.Queue(maxsize=scorers)
        self.to_write: queue.Queue[list[ScoreRow] | object] = queue.Queue(maxsize=WRITE_QUEUE)
        self.halt = threading.Event()  # stopped or failed somewhere: read and score no more
        self.writer_gone = threading.Event()  # nobody takes scores any more: drop them
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.held: set[int] = set()  # claimed post ids whose claims are not released yet
        self.first = first
        self.done = 0

    def run(self) -> int:
        self._hold(self.first)
        self.to_score.put(self.first)  # room for it: nothing else is there yet
        threads = [threading.Thread(target=self._read, args=(self.first[-1].id,),
                                    name="classify-read", daemon=True)]
        threads += [threading.Thread(target=self._score, name=f"classify-score-{n}",
                                     daemon=True) for n in range(self.scorers)]
        savers = [threading.Thread(target=self._saver, name=f"classify-write-{n}", daemon=True)
                  for n in range(self.writers)] if self.writers > 1 else []
        self.savers_alive = len(savers)
        for thread in (*threads, *savers):
            thread.start()
        try:
            self._write(threads[1:])
        except BaseException as exc:
            self._fail(exc)
        finally:
            for _ in savers:  # each saves what it was handed, then ends
                self._put(self.to_save, _END, self.savers_gone)
            for thread in savers:
                thread.join()
            if savers and self.on_batch is not None:
                self.on_batch(self.done)
            self.writer_gone.set()  # whatever still runs stops at its next batch
            self.halt.set()
            for thread in threads:
                thread.join()
            self._give_back()
        if self.errors:
            for later in self.errors[1:]:  # most often a consequence of the first
                log.debug("classify stage: also %s: %s", type(later).__name__, later)
            raise self.errors[0]
        return self.done

    # -- the threads --

    def _read(self, after: int) -> None:
        conn = None
        try:
            conn = self.connect()
            while not self._stopping():
                posts = self.stage.read(conn, after)
                self._hold(posts)
                if not posts or not self._put(self.to_score, posts, self.halt):
                    break
                after = posts[-1].id
        except BaseException as exc:  # what was read before is still scored and saved
            self._fail(exc, halt=False)
        finally:
            for _ in range(self.scorers):  # one end for each scorer
                self._put(self.to_score, _END, self.halt)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 (closing a broken connection: nothing to do)
                    log.debug("classify reader: closing its connection failed", exc_info=True)

    def _score(self) -> None:
        try:
            while True:
                posts = self._get(self.to_score)
                if posts is _END or posts is None:
                    break
                if self._stopping():
                    continue  # read but not scored: its claims are given back at the end
                assert isinstance(posts, list)
                # scored before a halt: still saved, unless the writer itself failed
                if not self._put(self.to_write, self.stage.score(posts), self.writer_gone):
                    break
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._put(self.to_write, _END, self.writer_gone)

    def _write(self, scorers: list[threading.Thread]) -> None:
        """Save what the scorers hand over, in transactions of up to ``write_size`` posts or
        :data:`WRITE_SECONDS`, until every scorer has ended; also after an error elsewhere,
        so nothing scored before it is lost."""
        pending: list[ScoreRow] = []
        since = 0.0  # monotonic time the oldest pending scores arrived
        ended = 0
        while ended < self.scorers:
            wait = _POLL if not pending else max(0.0, since + WRITE_SECONDS - time.monotonic())
            try:
                item = self.to_write.get(timeout=wait)
            except queue.Empty:
                item = None
                if not any(t.is_alive() for t in scorers) and self.to_write.empty():
                    ended = self.scorers  # a scorer that could not hand over its end
            if item is _END:
                ended += 1
            elif item is not None:
                assert isinstance(item, list)
                if not pending:
                    since = time.monotonic()
                pending += item
            due = pending and (len(pending) >= self.write_size or ended >= self.scorers
                               or time.monotonic() - since >= WRITE_SECONDS)
            if due:
                self._save(pending)
                pending = []

    def _save(self, rows: list[ScoreRow]) -> None:
        """One transaction: saved here, or handed to a writer thread (then ``on_batch`` is
        told what the writers saved so far, one transaction behind)."""
        if self.writers > 1:
            self._put(self.to_save, rows, self.savers_gone)  # dropped only if every one failed
        else:
            saved = self.stage.save(rows)
            with self.lock:
                self.done += saved
                self.held.difference_update(pid for pid, _, _ in rows)
        if self.on_batch is not None:
            self.on_batch(self.done)

    def _saver(self) -> None:
        """A writer thread: saves the transactions it is handed on a connection of its own;
        a failure halts the stage, and the other writers save what is still handed over."""
        conn = None
        try:
            conn = self.connect()
            while True:
                rows = self.to_save.get()
                if rows is _END:
                    break
                assert isinstance(rows, list)
                saved = self.stage.save(rows, conn)
                with self.lock:
                    self.done += saved
                    self.held.difference_update(pid for pid, _, _ in rows)
        except BaseException as exc:
            self._fail(exc)
        finally:
            with self.lock:
                self.savers_alive -= 1
                if self.savers_alive == 0:
                    self.savers_gone.set()
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 (closing a broken connection: nothing to do)
                    log.debug("classify writer: closing its connection failed", exc_info=True)

    # -- between the threads --

    def _stopping(self) -> bool:
        return self.halt.is_set() or (self.stop is not None and self.stop.is_set())

    def _fail(self, exc: BaseException, *, halt: bool = True) -> None:
        with self.lock:
            self.errors.append(exc)
        if halt:
            self.halt.set()

    @staticmethod
    def _put(box: queue.Queue[Any], item: object, give_up: threading.Event) -> bool:
        """Hand ``item`` over, waiting for room; False (dropped) once ``give_up`` is set."""
        while True:
            try:
                box.put(item, timeout=_POLL)
                return True
            except queue.Full:
                if give_up.is_set():
                    return False

    def _get(self, box: queue.Queue[T]) -> T | None:
        """The next item, waiting for one; None once the stage halted."""
        while True:
            try:
                return box.get(timeout=_POLL)
            except queue.Empty:
                if self.halt.is_set():
                    return None

    def _hold(self, posts: list[Unscored]) -> None:
        if self.stage.owner is not None:
            with self.lock:
                self.held.update(p.id for p in posts)

    def _give_back(self) -> None:
        """Release the claims of posts read but not saved (stopped, or failed), so other
        workers need not wait for the leases to expire; failing that, they expire."""
        with self.lock:
            left = sorted(self.held)
            self.held.clear()
        if not left:
            return
        try:
            self.stage.release(left)
        except database_errors() as exc:
            log.warning("could not release %d claimed posts (they expire in %.0fs): %s",
                        len(left), LEASE_SECONDS, exc)


def _score(p: Any, classifier: Classifier) -> Score:
    probs = p.probabilities
    return Score(
        sentiment=p.sentiment, p_negative=probs["negative"], p_neutral=probs["neutral"],
        p_positive=probs["positive"], urgency=p.urgency, model=classifier.name,
        model_version=classifier.version, lang=p.language,
        language_supported=p.language_supported, scored_by=p.scored_by,
    )
