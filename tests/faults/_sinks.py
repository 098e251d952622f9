"""Each sink with its fake remote, for the fault matrix: one alert, one dispatch, what it left.

The fakes, the destination settings that point each real sink at its fake and the per-alert
counting of what the remote shows come from :mod:`tests.alerts.delivery_remotes` (the delivery
fault matrix of issue 5 uses the same), the outbox from a real SQLite file
(:func:`tests.alerts.delivery_matrix.seed_alerts`). :class:`SinkRun` dispatches through
:func:`alerts.dispatch.dispatch` as the runtime does for one destination: a total
``send_deadline`` and the socket-level address guard of the destination's own endpoints
(:func:`listener.core.netguard.endpoints`).

SMTP has its own kinds: the fake server's ``SmtpFaults`` (421 at MAIL, 451 at DATA, the
connection dropped at MAIL), and :class:`SmtpFront`, a TCP front before the fake that either
never greets (``hang``), greets one byte at a time (``drip``) or relays to the fake (the fault
is over), so the destination's host and port stay the same throughout.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts.dispatch import DispatchResult, RetryPolicy, dispatch
from alerts.sinks.base import Sink
from listener.core.models import parse_iso
from listener.core.netguard import endpoints, private_allowed
from storage import db as store
from tests.alerts.delivery_matrix import build_sink, seed_alerts
from tests.alerts.delivery_remotes import Remote
from tests.alerts.test_dispatch import ManualClock
from tests.fakes.base import Fault

DEADLINE = 2.0
"""``send_deadline`` of every dispatch under test: drip and hang end here."""
CUT_GRACE = 1.5
"""Seconds past the deadline a dispatch that the deadline cut may take."""
GRACE = 3.0
"""Seconds past the deadline any other failed dispatch may take."""
TIMEOUT = 30.0
"""The sinks' own per-operation timeout: longer than the test, so only the deadline cuts."""
OVERSIZED = 6 * 1024 * 1024
"""Bytes of an oversized answer: past the sinks' answer cap (``SINK_MAX_BYTES``, 4 MiB)."""
POLICY = RetryPolicy(max_attempts=3, backoff_initial=0.1, backoff_max=0.2)
DEFAULT_WAIT = {"slack-webhook": 30.0, "slack-bot": 60.0, "zendesk": 30.0, "jira": 60.0,
                "github": 60.0, "webhook": 30.0, "discord": 5.0}
"""Seconds each sink holds its destination on a 429 without Retry-After (its own default:
``retry_after_seconds``' 30 s; Slack's Web API, Jira and GitHub's secondary limit 60 s; Discord,
whose 429s always carry ``retry_after``, 5 s)."""


class Fixed:
    """``fake.faults``: the same fault for every request, built before the test measures memory
    (an oversized answer is allocated once, outside the traced dispatch); counts requests."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Fault:
        with self._lock:
            self.requests += 1
        return self.fault


@dataclass(frozen=True)
class Attempt:
    """One dispatch: its result, how long it took, the peak of memory it allocated (traced
    runs only), and the alert's row afterwards."""

    result: DispatchResult
    seconds: float
    peak: int | None
    alert: dict[str, Any]


class SinkRun:
    """One sink built from its destination settings, one pending alert, dispatch passes."""

    def __init__(self, far: Remote, folder: Path, settings: dict[str, Any] | None = None) -> None:
        self.far = far
        self.clock = ManualClock()
        self.db = store.open_db(folder / "outbox.db")
        self.settings = dict(settings or far.settings)
        self.sink: Sink = build_sink(self.settings)
        self.config = type(self.sink).Config.model_validate(self.settings)
        [self.alert_id] = seed_alerts(self.db, self.clock, 1, self.sink.name)

    def dispatch(self, *, trace: bool = False) -> Attempt:
        started = time.monotonic()
        if trace:
            tracing = tracemalloc.is_tracing()
            tracemalloc.start()
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
        try:
            result = dispatch(
                self.db, {self.sink.name: self.sink}, POLICY, clock=self.clock,
                sleep=self.clock.sleep, send_deadline=DEADLINE,
                endpoints=endpoints(self.config), allow_private=private_allowed(self.config))
            peak = tracemalloc.get_traced_memory()[1] - before if trace else None
        finally:
            if trace and not tracing:
                tracemalloc.stop()
        return Attempt(result, time.monotonic() - started, peak, self.alert())

    def alert(self) -> dict[str, Any]:
        row = self.db.execute("SELECT status, attempts, next_attempt_at, last_error FROM alerts "
                              "WHERE id = ?", [self.alert_id]).fetchone()
        return dict(zip(("status", "attempts", "next_attempt_at", "last_error"), row,
                        strict=True))

    def next_attempt_at(self) -> datetime:
        return parse_iso(self.alert()["next_attempt_at"])

    def copies(self) -> int:
        """How many times the remote acted on the alert (the webhook: every arrival)."""
        return self.far.objects()[self.alert_id]

    def close(self) -> None:
        self.sink.close()
        self.db.close()


class SmtpFront:
    """A TCP server before an SMTP server: ``mode`` ``hang`` accepts and never greets, ``drip``
    greets a byte every ``drip`` seconds, ``relay`` pipes each connection to ``upstream_port``."""

    def __init__(self, upstream_port: int, mode: str, drip: float = 0.5) -> None:
        self.upstream_port, self.mode, self.drip = upstream_port, mode, drip
        self.connections = 0
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def stop(self) -> None:
        self._stopping.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(client)
            thread = threading.Thread(target=self._serve, args=(client, self.mode), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "hang":
            self._stopping.wait()
        elif mode == "drip":
            for byte in b"220 fake-smtp.test ESMTP ready\r\n":
                if self._stopping.wait(self.drip):
                    return
                try:
                    client.sendall(bytes([byte]))
                except OSError:  # the client's deadline cut the connection
                    return
            self._stopping.wait()
        else:
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        with self._lock:
            self._sockets.append(upstream)

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join(timeout=5)
