"""Login throttling: a token bucket per client address.

Every attempt to prove the token (the login form, a Bearer header) takes one try from the
client's bucket; a right token gives it back, so only wrong ones count. A client gets
``BURST`` tries at once and one more every ``REFILL_SECONDS``; with none left, every attempt,
right or wrong, is answered 429 with Retry-After: answering a right token then would tell a
guesser when it had found it. Session cookies are not throttled (their ids are 256-bit and
signed: nothing to guess).

Addresses are the proxy-corrected ones (``listener.web.proxy``); an IPv6 client is counted per
/64, the block one subscriber usually holds. State is per process and bounded (LRU).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

BURST = 5  # wrong tokens in a row before throttling starts
REFILL_SECONDS = 12.0  # then one more try every 12 s: 5 a minute
MAX_CLIENTS = 10_000  # buckets kept; the least recently used go first


@dataclass
class _Bucket:
    tries: float
    at: float  # when ``tries`` was last brought up to date (seconds)


def client_key(address: str | None) -> str:
    """The bucket an address counts against: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """Token buckets per client key; thread-safe (waitress serves from a thread pool)."""

    def __init__(self, burst: int = BURST, refill_seconds: float = REFILL_SECONDS,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.at)  # a clock stepping back refills nothing
        bucket.tries = min(float(self.burst), bucket.tries + elapsed / self.refill_seconds)
        bucket.at = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return bucket

    def take(self, key: str, now: float) -> int:
        """Take one try: 0 when granted, else the seconds until the next one (Retry-After)."""
        with self._lock:
            bucket = self._bucket(key, now)
            if bucket.tries >= 1:
                bucket.tries -= 1
                return 0
            return max(1, math.ceil((1 - bucket.tries) * self.refill_seconds))

    def give_back(self, key: str, now: float) -> None:
        """The try proved the right token: it does not count."""
        with self._lock:
            bucket = self._bucket(key, now)
            bucket.tries = min(float(self.burst), bucket.tries + 1)

    def exhausted(self, key: str, now: float) -> bool:
        """Whether the client has no try left (for a log line when throttling starts)."""
        with self._lock:
            return self._bucket(key, now).tries < 1


class Cooldown:
    """Says yes to a key at most once per ``seconds``: for audit entries and log lines about
    refused requests, which an attacker could otherwise repeat into a flood. Thread-safe and
    bounded like :class:`Throttle`."""

    def __init__(self, seconds: float = 60.0, max_keys: int = MAX_CLIENTS) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self._last: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def due(self, key: str, now: float) -> bool:
        """True (and the key's clock restarts) when the key was not let through in the last
        ``seconds``; False otherwise."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and 0 <= now - last < self.seconds:
                return False
            self._last.pop(key, None)
            self._last[key] = now
            while len(self._last) > self.max_keys:
                self._last.popitem(last=False)
            return True
