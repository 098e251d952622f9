"""A fake Hacker News Search API whose stories keep arriving, as a live platform's do.

Story ``i`` (ids from 1) appears ``period`` seconds after story ``i - 1``; its text is drawn from
the seeded generator, so the same seed always yields the same stream of texts (when each one is
first served depends on when the daemon polls). Every story mentions "acme" and its own number,
so no two texts are alike (the pipeline links identical texts as cross-posts) and each matches
the ``acme`` brand query. The fake remembers when it first served each story, for the latency
benchmark and for the crash harness's "every post served is stored" check.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from tests.fakes.base import ScriptedResponse
from tests.fakes.hn_api import FakeHNSearch, story

NEGATIVE = (
    "acme deleted my files again, order {n} never arrived and support ignores me. Furious.",
    "Worst service ever from acme: ticket {n} open for a week, nobody answers. I hate this.",
    "acme app {n} crashes on every launch and I lost all my work. Absolutely terrible.",
    "acme charged me twice for order {n} and refuses a refund. Awful, never again.",
)
POSITIVE = (
    "I love acme, release {n} made everything faster and it looks beautiful. Thank you!",
    "acme support fixed my problem {n} in minutes, amazing team. So happy!",
    "Best purchase this year: acme plan {n} is great and the app is a joy to use.",
)
NEUTRAL = (
    "acme release {n} notes are out; the changelog lists the new export formats.",
    "Does anyone know if acme plan {n} includes the API, or is that a separate tier?",
)


def story_text(rng: random.Random, number: int) -> str:
    """Negative about half the time, so about half of the stories alert."""
    pool = rng.choices((NEGATIVE, POSITIVE, NEUTRAL), weights=(5, 3, 2))[0]
    return rng.choice(pool).format(n=number)


class PostStream(FakeHNSearch):
    """The HN fake plus a clock-driven stream of new stories; call :meth:`begin` to start it."""

    name = "fake HN Search API (streaming)"

    def __init__(self, seed: int, period: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.period, self._clock = period, clock
        self._rng = random.Random(seed)
        self._started: float | None = None
        self._frozen: float | None = None
        self._made = 0
        self.texts: dict[str, str] = {}
        self.first_served: dict[str, float] = {}  # story id → clock() when first in an answer

    def begin(self) -> None:
        with self._lock:
            self._started = self._clock()

    def freeze(self) -> list[str]:
        """Stop the stream (stories due by now still appear); returns every story id."""
        with self._lock:
            self._frozen = self._clock()
            self._produce()
            return list(self.texts)

    def created(self) -> list[str]:
        with self._lock:
            self._produce()
            return list(self.texts)

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> ScriptedResponse:
        with self._lock:
            self._produce()
            answer = super().handle(method, path, query, headers, body)
            if answer.status == 200:
                now = self._clock()
                for hit in _hits(answer.body):
                    self.first_served.setdefault(str(hit.get("objectID")), now)
            return answer

    def _produce(self) -> None:
        """Add every story due by now (or by the freeze), in order: the texts stay seeded."""
        if self._started is None:
            return
        now = self._frozen if self._frozen is not None else self._clock()
        due = int((now - self._started) / self.period) + 1
        while self._made < due:
            self._made += 1
            number = self._made
            stamp = int(self._started + (number - 1) * self.period)
            text = story_text(self._rng, number)
            self.texts[str(number)] = text
            self.add(story(number, stamp, text, author=f"user{number % 97}"))


def _hits(body: str | bytes) -> list[dict]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    hits = data.get("hits") if isinstance(data, dict) else None
    return [h for h in hits if isinstance(h, dict)] if isinstance(hits, list) else []
