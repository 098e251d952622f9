"""Progress of ``listener run --once`` on a terminal: a line per stage, the running one updated
in place.

Without it a run over 5,000 posts is silent for half a minute. It is drawn only where a person
watches: stderr is a terminal and logs are text. Cron (stderr a file or a pipe) and JSON logs
(read by machines) never see it. :class:`TerminalProgress` is the ``Runtime.progress`` hook;
:func:`describe` turns one event into the line shown, and is all the wording there is.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"  # back to the start of the line and erase it (every ANSI terminal)
# what a finished stage's count means, in words
NOUNS = {"collect": "new posts", "classify": "posts scored", "rules": "alerts",
         "reports": "report alerts", "dispatch": "alerts handled"}


def wanted(stream: TextIO, log_format: str | None) -> bool:
    """Draw progress only on a terminal with text logs (never in cron, never among JSON)."""
    isatty = getattr(stream, "isatty", None)
    return log_format != "json" and isatty is not None and bool(isatty())


def label(stage: str, target: str) -> str:
    """``collect demo-posts`` for a source's collect, else the stage's name."""
    return f"{stage} {target}" if target else stage


def describe(
    event: str, stage: str, target: str, count: int | None, *, total: int | None = None,
    seconds: float | None = None, detail: str | None = None,
) -> str:
    """One progress line: ``classify: 1,536/5,000 posts…`` while running, ``collect x: 5,000 new
    posts (2.1 s)`` when done; ``detail`` replaces the count's wording (dispatch's outcomes)."""
    name = label(stage, target)
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    if event == "failed":
        return f"{name}: FAILED{took}; see the log"
    if event == "done":
        what = detail or f"{count or 0:,} {NOUNS.get(stage, 'items')}"
        return f"{name}: {what}{took}"
    if event == "batch" and count is not None:
        of = f"/{total:,}" if total and total >= count else ""
        return f"{name}: {count:,}{of} posts…"
    if total:
        return f"{name}: {total:,} posts waiting…"
    return f"{name}…"


class TerminalProgress:
    """The ``Runtime.progress`` hook for a terminal: redraws the running stage's line in place
    and ends it when the stage does.

    ``total_of(stage)`` may say how much work a starting stage has (classify: posts waiting);
    ``detail_of(stage, count)`` may word a finished stage's result (dispatch: delivered,
    retrying, parked). Log records in between first erase the half-drawn line
    (:meth:`attach`), so they never start in the middle of it.
    """

    def __init__(
        self, stream: TextIO, *, total_of: Callable[[str], int | None] | None = None,
        detail_of: Callable[[str, int], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.total_of, self.detail_of, self.clock = stream, total_of, detail_of, clock
        self.started: dict[tuple[str, str], float] = {}
        self.totals: dict[tuple[str, str], int | None] = {}
        self.open = False  # a line is drawn without its newline

    def __call__(self, event: str, stage: str, target: str, count: int | None) -> None:
        key = (stage, target)
        if event == "start":
            self.started[key] = self.clock()
            self.totals[key] = self.total_of(stage) if self.total_of else None
        total = self.totals.get(key)
        if event in ("start", "batch"):
            self._draw(describe(event, stage, target, count, total=total))
            return
        began = self.started.pop(key, None)
        seconds = self.clock() - began if began is not None else None
        detail = self.detail_of(stage, count or 0) if self.detail_of and event == "done" else None
        self._draw(describe(event, stage, target, count, seconds=seconds, detail=detail),
                   final=True)

    def _draw(self, text: str, *, final: bool = False) -> None:
        self.stream.write(CLEAR_LINE + text + ("\n" if final else ""))
        self.stream.flush()
        self.open = not final

    def erase(self) -> None:
        """Clear a half-drawn line (a log record is about to be written on this terminal)."""
        if self.open:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.open = False

    def attach(self, handler: logging.Handler) -> None:
        """Erase the running stage's line before ``handler`` writes each record."""
        handler.addFilter(_EraseFirst(self))


class _EraseFirst(logging.Filter):
    def __init__(self, progress: TerminalProgress) -> None:
        super().__init__()
        self.progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        self.progress.erase()
        return True


# how dispatch's outcomes read in its progress line
OUTCOME_WORDS = (("delivered", "delivered"), ("retry", "retrying"), ("failed", "parked"),
                 ("rate_limited", "held by a rate limit"))


def dispatch_detail(outcomes: dict[str, int]) -> str:
    """``37 delivered, 2 retrying, 1 parked`` from each alert's latest outcome in this run."""
    parts = [f"{outcomes[key]:,} {words}" for key, words in OUTCOME_WORDS if outcomes.get(key)]
    return ", ".join(parts) or "nothing was due"


def for_run(database: Path, mark: int, stream: TextIO) -> TerminalProgress:
    """The display for one ``run --once``, reading what it needs from the database: posts
    waiting when classify starts, and dispatch's outcomes after ``mark`` (its first delivery
    attempt id). It erases its running line before any log record on the root handlers."""
    from storage.backlog import unscored
    from storage.delivery_outcomes import outcomes_since
    from storage.tx import connect

    def read(query: Callable[..., object]) -> object:
        try:
            db = connect(database)
            try:
                return query(db)
            finally:
                db.close()
        except sqlite3.Error:  # a display never fails the run: show less instead
            return None

    def total_of(stage: str) -> int | None:
        return read(unscored) if stage == "classify" else None  # type: ignore[return-value]

    def detail_of(stage: str, count: int) -> str | None:
        if stage != "dispatch":
            return None
        outcomes = read(lambda db: outcomes_since(db, mark))
        return dispatch_detail(outcomes) if isinstance(outcomes, dict) else None

    shown = TerminalProgress(stream, total_of=total_of, detail_of=detail_of)
    for handler in logging.getLogger().handlers:
        shown.attach(handler)
    return shown
