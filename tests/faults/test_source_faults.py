"""Issue 14's fault suite for sources: every network source against every fault kind.

For each source (x, reddit, hackernews, mastodon, bluesky, rss, appstore, googleplay and issue
19's youtube, trustpilot, facebook, instagram, discourse, stackexchange, github) and each
kind of :mod:`tests.fakes.chaos` (drip, hang, reset, 5xx, 429 with and without Retry-After,
malformed, oversized, redirects to the metadata address and to another port on 127.0.0.1), one
test, all of it real but the far end (:mod:`tests.faults._sources`):

1. a first poll stores post 1 and saves a cursor;
2. post 2 is published and every answer of the fake is the fault; the poll returns within
   ``page_deadline`` + a few seconds, nothing escapes ``run_collect`` (None for a failed poll,
   0 for a rate-limited one), no crash is logged, nothing is stored, the saved cursor is the one
   of step 1, the redirect target on 127.0.0.1 is never reached; a 429 pauses the source for
   its Retry-After (60 s without one), anything else fails the poll without a pause and its
   recorded error names the defence that acted (the deadline, ``max_bytes``, the SSRF guard or
   an unfollowed 3xx);
3. the fault is over (and the clock past the pause): the next poll stores post 2, once.

A case that shows a product defect is a strict xfail (:data:`KNOWN`) that only that defect's
own failure satisfies, checked after everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.chaos import KINDS, Chaos
from tests.fakes.hostile import Recorder
from tests.faults._sources import (
    CUT_GRACE,
    DEADLINE,
    DEFAULT_PAUSE,
    GRACE,
    OVERSIZED,
    PLATFORMS,
    SMALL_CAP,
    Served,
    SourceRun,
)

RATE_LIMITS = ("http-429", "http-429-bare")
CUT = ("drip", "hang")
"""Kinds only the page deadline ends: the poll must end at ``page_deadline``, give or take
:data:`CUT_GRACE` (the others end at once, or after a library's own short retries)."""
KNOWN: dict[tuple[str, str], tuple[str, type[AssertionError]]] = {}
"""(source, kind) → why that case fails today (a product defect, reported, not fixed here) and
the failure that shows it; filled in below the exception classes."""



@pytest.fixture
def target() -> Iterator[Recorder]:
    """Another service on this machine: where ``redirect-loopback`` points, never reached."""
    with Recorder() as fake:
        yield fake


class Overrun(AssertionError):
    """The poll outlived its deadline (raised last: every other check passed)."""


class NotPaused(AssertionError):
    """A 429 failed the poll instead of pausing the source (raised last, as :class:`Overrun`)."""


KNOWN.update({
})


def kinds(source: str) -> list[Any]:
    """Every kind; a known defect's case is a strict xfail that only its own failure
    (:class:`Overrun`, :class:`NotPaused`) satisfies: any other failure still fails the test."""
    params = []
    for kind in KINDS:
        reason, raises = KNOWN.get((source, kind), ("", None))
        marks = [pytest.mark.xfail(strict=True, raises=raises, reason=reason)] if raises else []
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


def crashes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Stage failures logged with a traceback: an error the source did not understand."""
    return [r.getMessage() for r in caplog.records
            if r.name == "listener.pipeline" and r.exc_info is not None]


def check(source: str, kind: str, folder: Path, target: Recorder,
          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    platform = PLATFORMS[source]
    with platform.start() as fake:
        run = SourceRun(platform, fake, folder,
                        max_bytes=SMALL_CAP if kind == "oversized" else None)
        try:
            run.publish(1, minutes_ago=10)
            first = run.poll()
            assert first.result == 1, f"the poll before the fault stored post 1: {first}"
            cursor, stored = run.cursor(), run.stored()
            assert cursor is not None

            run.publish(2, minutes_ago=5)
            served = Served(Chaos(14, 1.0, kinds=(kind,), oversized_bytes=OVERSIZED,
                                  loopback_url=target.base_url + "/admin/secrets"))
            fake.faults = served
            try:
                poll = run.poll()
            finally:
                fake.faults = None
            assert served.faults, "the fault was served"
            assert crashes(caplog) == []
            assert run.stored() == stored, "nothing stored from a broken answer"
            assert run.cursor() == cursor, "the cursor did not move"
            assert target.requests == [], "the redirect target was reached"
            not_paused = ""
            if kind in RATE_LIMITS and poll.result != 0:
                not_paused = f"a 429 failed the poll instead of pausing the source: {poll}"
                assert poll.result is None and run.paused_until() is None
            elif kind in RATE_LIMITS:
                wait = served.retry_after() if kind == "http-429" else DEFAULT_PAUSE
                assert wait is not None
                paused = run.paused_until()
                assert paused is not None, "the pause is recorded in source_state"
                expected = run.clock.now + timedelta(seconds=wait)
                assert abs((paused - expected).total_seconds()) <= 1, (paused, expected)
                run.clock.now = paused + timedelta(seconds=1)
            else:
                assert poll.result is None, f"the poll failed: {poll}"
                assert run.paused_until() is None
                assert poll.error
                expect_error(kind, poll.error, target)

            after = run.poll()
            assert after.result == 1, f"the poll after the fault stored post 2: {after}"
            assert len(run.stored()) == len(set(run.stored())) == 2
            assert run.paused_until() is None
            assert run.cursor() != cursor
        finally:
            run.close()
    limit = DEADLINE + (CUT_GRACE if kind in CUT else GRACE)
    if poll.seconds >= limit:
        raise Overrun(f"the poll took {poll.seconds:.1f} s (limit {limit:g} s): {poll}")
    if not_paused:
        raise NotPaused(not_paused)


def expect_error(kind: str, error: str, target: Recorder) -> None:
    """The recorded error says what happened (the defence that acted, not a side effect)."""
    if kind in ("drip", "hang"):
        assert f"no complete answer within {DEADLINE:g} s" in error, error
    elif kind == "oversized":
        assert "larger than max_bytes" in error and f"({SMALL_CAP} bytes)" in error, error
    elif kind == "redirect-private":
        assert ("169.254.169.254" in error and "SSRF guard" in error) or "HTTP 302" in error, \
            error
    elif kind == "redirect-loopback":
        assert (f"127.0.0.1:{target.port}" in error and "SSRF guard" in error) \
            or "HTTP 307" in error, error
    assert "/admin/secrets" not in error and "/latest/meta-data" not in error, error


CASES = [pytest.param(source, *case.values, id=f"{source}-{case.id}", marks=case.marks)
         for source in PLATFORMS for case in kinds(source)]
"""Every network source (:data:`PLATFORMS`, issue 19's included) under every kind."""


@pytest.mark.parametrize(("source", "kind"), CASES)
def test_source_under_fault(source: str, kind: str, tmp_path: Path, target: Recorder,
                            caplog: pytest.LogCaptureFixture) -> None:
    check(source, kind, tmp_path, target, caplog)
