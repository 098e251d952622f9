"""``listener doctor``: is this installation ready to run, and if not, why not?

Each check is one line: OK, FAIL with the reason, or SKIP with why it cannot be checked. The
database must be writable; every enabled source and destination is built (library installed,
settings valid) and, where it has a ``check()`` method, makes one cheap call that proves its
credentials without collecting or delivering anything; the model must load and score a post.
Secrets never appear in a reason (every line goes through :func:`listener.log.redact`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from alerts.sinks import sink_class
from listener.config import Config
from listener.errors import ListenerError
from listener.log import redact
from listener.models import to_iso, utcnow
from storage.migrations import pending
from storage.tx import connect

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    subject: str  # "database", "source x-main", "destination slack", "model"
    outcome: str  # OK, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.outcome:<4}  {self.subject}: {redact(self.detail)}"


def diagnose(config: Config, *, model: bool = True) -> Iterator[Check]:
    """Every check, in the order a run needs them."""
    from listener.pipeline import Runtime

    runtime = Runtime(config)
    yield check_database(config)
    for source in config.sources:
        if not source.enabled:
            yield Check(f"source {source.name}", SKIP, "enabled: false")
            continue
        yield _probe(f"source {source.name}", lambda s=source: runtime.build_source(s),
                     "no credentials to check; its next poll shows whether it works")
    for name, why in config.disabled.items():
        yield Check(f"destination {name}", SKIP, f"off (optional): {why}")
    for dest in config.destinations:
        yield _probe(f"destination {dest.name}", lambda d=dest: sink_class(d.type)(d),
                     "cannot be checked without delivering something")
    if model:
        yield check_model(runtime)


def check_database(config: Config) -> Check:
    """Open it, write inside a transaction that is rolled back, and report pending migrations."""
    path = config.db_path
    try:
        db = connect(path)
        try:
            todo = pending(db)
            db.conn.execute("BEGIN IMMEDIATE")  # the write lock: proves we may write
            try:
                db.conn.execute("CREATE TABLE _doctor_probe (x)")  # proves the pages are writable
            finally:
                db.conn.execute("ROLLBACK")
        finally:
            db.close()
        free = shutil.disk_usage(path.parent).free / 2**30
    except Exception as exc:  # any failure here is the answer
        return Check("database", FAIL, f"{path}: {_reason(exc)}")
    note = f"{len(todo)} migration(s) to apply on the next run" if todo else "schema up to date"
    return Check("database", OK, f"{path} writable; {note}; {free:.1f} GiB free")


def check_model(runtime: Any) -> Check:
    """Load the configured model and score one post."""
    started = time.monotonic()
    try:
        classifier = runtime.classifier
        [prediction] = classifier.predict(["listener doctor: is the model working?"])
    except Exception as exc:
        return Check("model", FAIL, _reason(exc))
    seconds = time.monotonic() - started
    return Check("model", OK, f"{classifier.name} {classifier.version} loaded and scored a test "
                              f"post ({prediction.sentiment}) in {seconds:.1f} s")


def _probe(subject: str, build: Callable[[], Any], no_check: str) -> Check:
    """Build a source or sink and run its ``check()``; every failure becomes a FAIL line."""
    try:
        thing = build()
    except Exception as exc:  # a missing library, a bad setting: the answer
        return Check(subject, FAIL, _reason(exc))
    try:
        check = getattr(thing, "check", None)
        if check is None:
            return Check(subject, SKIP, no_check)
        detail = check()
    except Exception as exc:
        return Check(subject, FAIL, _reason(exc))
    finally:
        close = getattr(thing, "close", None)
        if close is not None:
            close()
    if detail is None:
        return Check(subject, SKIP, no_check)
    return Check(subject, OK, str(detail))


def _reason(exc: BaseException) -> str:
    """Our errors say what to do; anything else is shown with its type (it may be a bug)."""
    text = str(exc) if isinstance(exc, ListenerError) else f"{type(exc).__name__}: {exc}"
    return redact(text)


def header(config: Config) -> str:
    return (f"listener doctor {to_iso(utcnow())}: {config.path} — {len(config.sources)} "
            f"source(s), {len(config.destinations)} destination(s)")
