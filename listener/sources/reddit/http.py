"""Reddit's HTTP layer under praw: our timeout on every request, the network guard, and the
rate-limit budget.

prawcore sleeps by itself when the budget runs out; we read the same headers so the source can
raise RateLimited instead (a sleeping collector would block the daemon's other jobs). Every
request (prawcore's token POST follows redirects) goes through the guard's requests adapter
(:mod:`listener.sources.guard_requests`): no hop to a private address, answers capped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from listener.core.httpguard import Policy
from listener.core.models import Clock


class RateBudget:
    """Reddit's ``X-Ratelimit-Remaining`` / ``-Reset`` from the latest answer."""

    def __init__(self) -> None:
        self.remaining: float | None = None
        self.reset_at: datetime | None = None

    def note(self, headers: Mapping[str, str], now: datetime) -> None:
        """Remember an answer's headers (the token endpoint sends none: nothing changes)."""
        try:
            remaining = float(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        self.remaining, self.reset_at = remaining, now + timedelta(seconds=max(0.0, reset))

    def wait(self, now: datetime) -> float:
        """Seconds until the budget refills when it is used up, else 0."""
        if self.remaining is None or self.remaining >= 1 or self.reset_at is None:
            return 0.0
        return max(0.0, (self.reset_at - now).total_seconds())


def http_session(
    timeout: float, note: Callable[[Mapping[str, str], datetime], None], clock: Clock,
    policy: Policy,
) -> Any:
    """A ``requests.Session`` that puts our timeout on every call (prawcore passes its own
    16 s otherwise), sends through the guard and reports each answer's rate-limit headers."""
    import requests

    from listener.sources.guard_requests import GuardedAdapter, mount

    class _Session(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = timeout
            response = super().request(method, url, *args, **kwargs)
            note(response.headers, clock())
            return response

    session = _Session()
    mount(session, GuardedAdapter(policy))
    return session


def no_retries(reddit: Any) -> None:
    """Turn prawcore's own retries off: after a dropped or cut connection (a page deadline) or
    a 5xx it retries twice, sleeping up to 2 + 4 s that no deadline can interrupt. A failed
    poll is retried by the next poll, with the cursor where it was, so nothing is lost.
    (prawcore has no public switch: its sessions take the strategy class as an attribute.)"""
    from prawcore.sessions import FiniteRetryStrategy

    class Once(FiniteRetryStrategy):
        DEFAULT_RETRIES = 0

        def __init__(self, retries: int = 0) -> None:
            super().__init__(retries=retries)

    for name in ("_core", "_read_only_core", "_authorized_core"):
        core = getattr(reddit, name, None)
        if core is not None and hasattr(core, "_retry_strategy_class"):
            core._retry_strategy_class = Once
