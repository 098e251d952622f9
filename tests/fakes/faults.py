"""Seeded fault schedules for the fakes: which request fails, and how (issue #5's fault matrix).

A schedule is a shuffled deck: every fault kind ``weight`` times plus enough normal answers for
the wanted ``rate``, reshuffled (from the seed) each time it runs out. So any run of ``len(deck)``
requests meets every kind, and a seed gives the same sequence of answers for the same sequence
of requests.

HTTP kinds (:class:`HttpFaults`, set as ``fake.faults`` on any :class:`FakeHTTPServer`):

- ``http-500`` / ``http-503``: refused, nothing done (no Retry-After);
- ``http-429``: refused with ``Retry-After`` (1-60 s) and the platform's own rate-limit body;
- ``slow``: nothing done, no answer until after the client's timeout;
- ``reset``: the connection is reset (TCP RST) before the request is processed;
- ``acted-hangup``: the remote ACTS (creates the ticket, posts the message), then the connection
  drops without an answer;
- ``acted-timeout``: the remote acts, then answers only after the client's timeout.

SMTP kinds (:class:`SmtpFaults`, ``FakeSMTPServer.faults``), drawn once per session at MAIL:
``smtp-421`` (MAIL refused, service closing), ``smtp-451`` (DATA refused, local error),
``drop`` (connection closed at MAIL, nothing accepted), ``acted-hangup`` (DATA accepted, then the
connection drops before the 250) and ``acted-timeout`` (DATA accepted, the 250 comes too late).

The two ``acted-*`` kinds are the dangerous ones: the client cannot know that the remote acted.
They are counted apart when they hit a request that creates something (:attr:`acted_lost`).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.fakes.base import HANG_UP, RESET, Fault
from tests.fakes.smtp_server import ACCEPT_THEN_HANG_UP, ACCEPT_THEN_STALL, DROP

HTTP_KINDS = ("http-500", "http-503", "http-429", "slow", "reset", "acted-hangup", "acted-timeout")
SMTP_KINDS = ("smtp-421", "smtp-451", "drop", "acted-hangup", "acted-timeout")
ACTED = frozenset({"acted-hangup", "acted-timeout"})


class _Deck:
    """Fault kinds (and None: a normal answer) dealt in seeded shuffled rounds."""

    def __init__(self, seed: int, rate: float, kinds: tuple[str, ...],
                 weights: dict[str, int] | None = None) -> None:
        if not 0 < rate < 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        faults = [k for k in kinds for _ in range((weights or {}).get(k, 1))]
        normal = max(0, round(len(faults) / rate) - len(faults))
        self._cards: list[str | None] = [*faults, *([None] * normal)]
        self._rng = random.Random(seed)
        self._round: list[str | None] = []

    def deal(self) -> str | None:
        if not self._cards:  # every weight 0: no faults at all
            return None
        if not self._round:
            self._round = list(self._cards)
            self._rng.shuffle(self._round)
        return self._round.pop()

    def retry_after(self) -> int:
        return self._rng.randint(1, 60)


class _Counts:
    """What a schedule did: requests seen, faults by kind, acted-then-lost on creates."""

    def __init__(self) -> None:
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self.acted_lost = 0
        self.enabled = True  # off: every request is answered normally (the outage is over)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())


class HttpFaults(_Counts):
    """``FakeHTTPServer.faults``: one seeded decision per request.

    ``late``: seconds a ``slow`` / ``acted-timeout`` answer is held (more than the client's
    timeout); ``creates(method, path)``: whether a request creates the remote object;
    ``busy``: the platform's body for a 429.
    """

    def __init__(self, seed: int, rate: float, *, late: float,
                 creates: Callable[[str, str], bool], busy: Any = "",
                 weights: dict[str, int] | None = None) -> None:
        super().__init__()
        self._deck = _Deck(seed, rate, HTTP_KINDS, weights)
        self._late, self._creates, self._busy = late, creates, busy
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            kind = self._deck.deal() if self.enabled else None
            if kind is None:
                return None
            self.injected[kind] += 1
            if kind in ACTED and self._creates(method, path):
                self.acted_lost += 1
            return self._fault(kind)

    def _fault(self, kind: str) -> Fault:
        late = self._late
        if kind == "http-429":
            wait = str(self._deck.retry_after())
            return Fault(429, self._busy, {"Retry-After": wait}, kind=kind)
        return {
            "http-500": Fault(500, "", kind=kind),
            "http-503": Fault(503, "", kind=kind),
            "slow": Fault(504, "", delay=late, kind=kind),
            "reset": Fault(RESET, kind=kind),
            "acted-hangup": Fault(HANG_UP, kind=kind, acted=True),
            "acted-timeout": Fault(504, "", delay=late, kind=kind, acted=True),
        }[kind]


class SmtpFaults(_Counts):
    """``FakeSMTPServer.faults``: one seeded decision per SMTP session, drawn at MAIL."""

    def __init__(self, seed: int, rate: float, weights: dict[str, int] | None = None) -> None:
        super().__init__()
        self._deck = _Deck(seed, rate, SMTP_KINDS, weights)
        self._session: str | None = None

    def __call__(self, command: str) -> str | None:
        if command == "MAIL":
            self.requests += 1
            self._session = self._deck.deal() if self.enabled else None
            if self._session is not None:
                self.injected[self._session] += 1
                self.acted_lost += int(self._session in ACTED)  # every session creates a mail
            return {"smtp-421": "421 4.3.2 Service not available, closing transmission channel",
                    "drop": DROP}.get(self._session or "")
        if command == "DATA":
            return {"smtp-451": "451 4.3.0 Local error in processing; try again later",
                    "acted-hangup": ACCEPT_THEN_HANG_UP,
                    "acted-timeout": ACCEPT_THEN_STALL}.get(self._session or "")
        return None


class HoldFirstCreate:
    """``FakeHTTPServer.faults`` for the crash runs: the first create is carried out and its
    answer held for ``hold`` seconds (the process is killed meanwhile); nothing else fails."""

    def __init__(self, creates: Callable[[str, str], bool], hold: float = 120.0) -> None:
        self._creates, self._hold = creates, hold
        self._held = threading.Event()

    def __call__(self, method: str, path: str) -> Fault | None:
        if self._held.is_set() or not self._creates(method, path):
            return None
        self._held.set()
        return Fault(504, "", delay=self._hold, kind="acted-hold", acted=True)


def hold_first_mail() -> Callable[[str], str | None]:
    """``FakeSMTPServer.faults`` for the crash runs: the first mail is accepted, its 250 held
    (for the server's ``stall`` seconds)."""
    held = threading.Event()

    def faults(command: str) -> str | None:
        if command != "DATA" or held.is_set():
            return None
        held.set()
        return ACCEPT_THEN_STALL

    return faults
