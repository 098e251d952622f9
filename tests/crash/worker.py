"""``listener run`` as the crash harness's PostgreSQL mode starts it: the real CLI, plus two
things only the harness needs (run as a script, so it imports nothing from ``tests``).

- ``CRASH_LEASE_SECONDS``: how long a lease lasts unrenewed (``listener.workers.LEASE_SECONDS``,
  300 s in production). A SIGKILLed worker holds its leases until they expire; with 300 s every
  kill during collect or dispatch would stop that source or destination for five minutes, and a
  hundred kills would test little but waiting. The harness shortens it so that the other
  workers take a dead worker's work over within the run: what is proved is that the take-over
  loses and duplicates nothing, not how soon it comes.
- ``CRASH_RUN_MARKS``: a file to which every ``runs`` row this process starts or finishes is
  appended (``pid run-id start|finish stage target wall-time error``), one ``write`` each, and
  the moment the model is loaded (``pid 0 model``). The ``runs`` table has no worker column;
  these lines say which process a run row left ``running`` belonged to, which is how the
  harness knows what each kill interrupted (and whether the model was still loading).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from typing import Any


def _mark(fd: int, run_id: int, event: str, stage: str, target: str, error: bool) -> None:
    line = (f"{os.getpid()} {run_id} {event} {stage} {target or '-'} {time.time():.3f}"
            f" {int(error)}\n")
    os.write(fd, line.encode())  # O_APPEND, one write: lines of threads never interleave


def _patch() -> None:
    import listener.classify_stage
    import listener.pipeline
    import listener.workers
    from storage import db as store

    seconds = float(os.environ.get("CRASH_LEASE_SECONDS", listener.workers.LEASE_SECONDS))
    for module in (listener.workers, listener.pipeline, listener.classify_stage):
        module.LEASE_SECONDS = seconds  # type: ignore[attr-defined]

    marks = os.environ.get("CRASH_RUN_MARKS")
    if not marks:
        return
    fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    start_run, finish_run = store.start_run, store.finish_run
    stages: dict[int, tuple[str, str]] = {}

    def started(db: Any, stage: str, target: str, now: datetime,
                worker: str | None = None) -> int:
        run_id = start_run(db, stage, target, now, worker=worker)
        stages[run_id] = (stage, target)
        _mark(fd, run_id, "start", stage, target, False)
        return run_id

    def finished(db: Any, run_id: int, now: datetime, *, items: int,
                 error: str | None = None) -> None:
        finish_run(db, run_id, now, items=items, error=error)
        stage, target = stages.pop(run_id, ("?", "?"))
        _mark(fd, run_id, "finish", stage, target, bool(error))

    store.start_run, store.finish_run = started, finished

    import classifiers.loader  # the runtime imports load_routed when it first needs the model

    load_routed = classifiers.loader.load_routed

    def loaded(*args: Any, **kwargs: Any) -> Any:
        model = load_routed(*args, **kwargs)
        _mark(fd, 0, "model", "-", "-", False)  # loaded: scoring can begin
        return model

    classifiers.loader.load_routed = loaded


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # this folder's daemon.py, stream.py… must not shadow real modules
    _patch()
    from listener.cli import main

    sys.argv = ["listener", *sys.argv[1:]]
    main()
