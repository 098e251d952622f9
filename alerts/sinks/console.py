"""Console destination: print alerts for a human at a terminal, or for ``--dry-run``.

It never fails for reasons worth retrying, so it is also the sink to start with: a config with
only a console destination shows what *would* be sent before any webhook is set up.
"""

from __future__ import annotations

import sys
import threading
from typing import ClassVar, Literal, TextIO

from pydantic import Field

from alerts.render.common import plain_text
from alerts.render.text import report_text
from alerts.sinks.base import SinkConfig
from listener.core.models import AlertMessage, ReportMessage


class ConsoleSinkConfig(SinkConfig):
    """Prints each alert as readable text."""

    type: Literal["console"] = Field("console", description="always 'console'")
    stream: Literal["stdout", "stderr"] = Field(
        "stdout", description="where to print: stdout (default) or stderr (keeps stdout clean)"
    )


class ConsoleSink:
    """Writes each alert as readable text, one blank line between alerts.

    Post alerts: :func:`alerts.render.common.plain_text`; reports (spikes, digests, held alerts):
    :func:`alerts.render.text.report_text` — title, window, facts, terms and the example
    posts with their sentiment. A digest's chart is not shown (a terminal cannot). An incident's
    update prints like any report (a terminal has no thread): its title says it is an update.
    """

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[ConsoleSinkConfig]] = ConsoleSinkConfig
    type: ClassVar[str] = "console"

    def __init__(self, config: ConsoleSinkConfig, *, stream: TextIO | None = None) -> None:
        """``stream`` overrides the configured one (tests pass a StringIO)."""
        self.name = config.name
        self._stream = stream
        self._stream_name = config.stream
        self._lock = threading.Lock()  # one alert's lines are never interleaved with another's

    def __repr__(self) -> str:
        return f"ConsoleSink(name={self.name!r}, stream={self._stream_name!r})"

    def _target(self) -> TextIO:
        # Looked up at each send, not at start-up: pytest and the CLI may swap sys.stdout.
        if self._stream is not None:
            return self._stream
        return sys.stderr if self._stream_name == "stderr" else sys.stdout

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Print the alert; there is no remote id."""
        text = report_text(message) if isinstance(message, ReportMessage) else plain_text(message)
        with self._lock:
            target = self._target()
            target.write(text + "\n\n")
            target.flush()
        return None

    def check(self) -> str:
        """``listener doctor``: nothing remote; says where alerts will be printed."""
        return f"prints alerts on {self._stream_name}"

    def close(self) -> None:
        """Flush, but never close: the stream belongs to whoever gave it (or to the process)."""
        with self._lock:
            self._target().flush()
