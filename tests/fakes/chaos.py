"""Every way a server misbehaves, for one fake at a time (issue 14's fault suite and soak).

:class:`Chaos` is a ``FakeHTTPServer.faults`` callable that answers a share of the requests
with one of :data:`KINDS`, dealt from a seeded shuffled deck so that a run of ``len(deck)``
requests meets every kind:

- ``drip``: 200 with headers at once, then the body a byte every ``drip`` seconds;
- ``hang``: the request is accepted and never answered (until the fake stops);
- ``reset``: TCP RST before anything is answered;
- ``http-500`` / ``http-503``: refused;
- ``http-429`` with ``Retry-After``, ``http-429-bare`` without;
- ``malformed``: 200 with a body no parser accepts;
- ``oversized``: 200 with a body far larger than any sane answer (``oversized_bytes``);
- ``redirect-private``: a redirect to the cloud metadata address, ``redirect-loopback`` to
  another port on 127.0.0.1 (SSRF through redirects).

Faults never act (nothing is created on the fake before a lost answer: ``faults.HttpFaults``
covers that); they only break the answer. ``enabled = False`` ends the chaos (the outage is
over), so a test or benchmark can check that everything is delivered afterwards.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

from tests.fakes.base import HANG, RESET, Fault

KINDS = ("drip", "hang", "reset", "http-500", "http-503", "http-429", "http-429-bare",
         "malformed", "oversized", "redirect-private", "redirect-loopback")
METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


class Chaos:
    """A seeded share (``rate``) of a fake's answers broken, every kind in turn."""

    def __init__(self, seed: int, rate: float, *, kinds: tuple[str, ...] = KINDS,
                 drip: float = 2.0, oversized_bytes: int = 64 * 2**20,
                 loopback_url: str = "http://127.0.0.1:9/elsewhere") -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        normal = max(0, round(len(kinds) / rate) - len(kinds))
        self._cards: list[str | None] = [*kinds, *([None] * normal)]
        self._round: list[str | None] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._drip, self._size, self._loopback = drip, oversized_bytes, loopback_url
        self.enabled = True
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def __call__(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            if not self.enabled:
                return None
            if not self._round:
                self._round = list(self._cards)
                self._rng.shuffle(self._round)
            kind = self._round.pop()
            if kind is None:
                return None
            self.injected[kind] += 1
            return self.fault(kind)

    def fault(self, kind: str) -> Fault:
        """The broken answer of one kind."""
        if kind == "oversized":  # built per answer: 64 MiB is not kept around between them
            return Fault(200, b"<" * self._size, kind=kind)
        return {
            "drip": Fault(200, b" " * 100_000, drip=self._drip, kind=kind),
            "hang": Fault(504, "", delay=HANG, kind=kind),
            "reset": Fault(RESET, kind=kind),
            "http-500": Fault(500, "internal error", kind=kind),
            "http-503": Fault(503, "unavailable", kind=kind),
            "http-429": Fault(429, "slow down", {"Retry-After": str(self._rng.randint(1, 20))},
                              kind=kind),
            "http-429-bare": Fault(429, "slow down", kind=kind),
            "malformed": Fault(200, b"\x00{<not json, not xml\xff\xfe", kind=kind),
            "redirect-private": Fault(302, "", {"Location": METADATA_URL}, kind=kind),
            "redirect-loopback": Fault(307, "", {"Location": self._loopback}, kind=kind),
        }[kind]
