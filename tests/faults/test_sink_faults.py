"""Issue 14's fault suite for sinks: every destination type against every fault kind.

For each HTTP sink (Slack incoming webhook, Slack bot token, Zendesk, Jira, GitHub, the signed
webhook, Discord) and each kind of :mod:`tests.fakes.chaos`, and for the e-mail sink under SMTP's own
kinds (421 at MAIL, 451 at DATA, the connection dropped, a server that never greets, one that
greets a byte at a time), one test with one alert in a real SQLite outbox
(:mod:`tests.faults._sinks`):

1. one dispatch pass while every answer is the fault: it returns within ``send_deadline`` + a
   few seconds, no sink crash is logged, the redirect target on 127.0.0.1 is never reached, and
   the alert is not lost: still pending, either for a retry (one attempt counted, its error
   saying what happened) or, on a 429, held for the Retry-After the remote named (the sink's
   default without one), no attempt counted; an oversized answer is not read whole;
2. the fault is over and the clock past ``next_attempt_at``: the next pass delivers the alert,
   and the remote shows it exactly once (the webhook receiver: one arrival).

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

from listener.core.httpguard import SINK_MAX_BYTES
from storage import outbox
from tests.alerts.delivery_remotes import remote
from tests.fakes.chaos import KINDS, Chaos
from tests.fakes.faults import SMTP_KINDS, SmtpFaults
from tests.fakes.hostile import Recorder
from tests.faults._sinks import (
    CUT_GRACE,
    DEADLINE,
    DEFAULT_WAIT,
    GRACE,
    OVERSIZED,
    TIMEOUT,
    Attempt,
    Fixed,
    SinkRun,
    SmtpFront,
)

RATE_LIMITS = ("http-429", "http-429-bare")
CUT = ("drip", "hang")
"""Kinds only the send deadline ends."""
MEMORY_LIMIT = 2 * SINK_MAX_BYTES
"""Most a dispatch pass may allocate on an :data:`OVERSIZED` answer: about the sinks' answer
cap, never the whole answer."""

KNOWN: dict[tuple[str, str], tuple[str, type[AssertionError]]] = {}
"""(sink, kind) → why that case fails today (a product defect, reported, not fixed here) and the
failure that shows it (an exception class below); none at present."""


class Overrun(AssertionError):
    """The dispatch pass outlived its deadline (raised last: every other check passed)."""


class Unbounded(AssertionError):
    """An oversized answer was read whole (raised last: every other check passed)."""


class Crashed(AssertionError):
    """The sink raised something it did not understand: dispatch logged a crash with its
    traceback (it still retries: raised last, once every other check passed)."""


ACCEPTED = {("webhook", "malformed"), ("webhook", "oversized")}
"""A ``200`` whose body is garbage or huge: the signed webhook's contract is that any 2xx is
the receiver's acceptance (its body, a receipt id, is optional), so the alert is delivered; the
sink reads at most ``ANSWER_MAX`` (64 KiB) of it. The other sinks need the body (a ticket id, a
message ts, Slack's ``ok``) and retry."""


def kinds(sink: str, all_kinds: tuple[str, ...] = KINDS) -> list[Any]:
    """Every kind; a known defect's case is a strict xfail that only its own failure
    (:class:`Overrun`, :class:`Unbounded`, :class:`Crashed`) satisfies: any other failure still
    fails the test."""
    params = []
    for kind in all_kinds:
        reason, raises = KNOWN.get((sink, kind), ("", None))
        marks = [pytest.mark.xfail(strict=True, raises=raises, reason=reason)] if raises else []
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params



@pytest.fixture
def target() -> Iterator[Recorder]:
    """Another service on this machine: where ``redirect-loopback`` points, never reached."""
    with Recorder() as fake:
        yield fake


def crashes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Attempts logged with a traceback: the sink raised something it did not understand."""
    return [r.getMessage() for r in caplog.records
            if r.name == "alerts.dispatch" and r.exc_info is not None]


def check(sink: str, kind: str, folder: Path, target: Recorder,
          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with remote(sink, timeout=TIMEOUT) as far:
        run = SinkRun(far, folder)
        try:
            chaos = Chaos(14, 1.0, kinds=(kind,), oversized_bytes=OVERSIZED,
                          loopback_url=target.base_url + "/admin/secrets")
            faults = Fixed(chaos.fault(kind))
            far.fake.faults = faults
            try:
                attempt = run.dispatch(trace=kind == "oversized")
            finally:
                far.fake.faults = None
            assert faults.requests, "the fault was served"
            crashed = crashes(caplog)
            assert target.requests == [], "the redirect target was reached"
            if (sink, kind) in ACCEPTED:
                assert attempt.result.delivered == 1, attempt
                assert attempt.alert["status"] == outbox.DELIVERED, attempt
            elif kind in RATE_LIMITS:
                stated = faults.fault.headers.get("Retry-After")
                wait = float(stated) if stated is not None else DEFAULT_WAIT[sink]
                expect_held(run, attempt, wait)
                deliver_after(run)
            else:
                expect_retry(run, attempt)
                expect_error(kind, attempt.alert["last_error"], target)
                deliver_after(run)
        finally:
            run.close()
    expect_bounded(kind, attempt, crashed)


def expect_held(run: SinkRun, attempt: Attempt, wait: float) -> None:
    """A 429: held for ``wait`` seconds, no attempt counted, nothing lost."""
    assert attempt.result.rate_limited == 1, attempt
    assert (attempt.alert["status"], attempt.alert["attempts"]) == (outbox.PENDING, 0), attempt
    expected = run.clock.now + timedelta(seconds=wait)
    assert abs((run.next_attempt_at() - expected).total_seconds()) <= 1, (attempt, wait)


def expect_retry(run: SinkRun, attempt: Attempt) -> None:
    """Any other fault: a failed attempt, retried later, nothing lost."""
    assert attempt.result.retried == 1, attempt
    assert (attempt.alert["status"], attempt.alert["attempts"]) == (outbox.PENDING, 1), attempt
    assert attempt.alert["last_error"], attempt
    assert run.next_attempt_at() >= run.clock.now  # backoff_initial 0.1 s; stored to the second


def deliver_after(run: SinkRun) -> None:
    """The fault is over: once the alert is due, one pass delivers it, and only once."""
    run.clock.now = max(run.clock.now, run.next_attempt_at()) + timedelta(seconds=1)
    again = run.dispatch()
    assert again.result.delivered == 1, again
    assert again.alert["status"] == outbox.DELIVERED, again
    assert run.copies() == 1, f"the remote shows the alert {run.copies()} times"


def expect_error(kind: str, error: str, target: Recorder) -> None:
    """The recorded error says what happened (the defence that acted, not a side effect)."""
    if kind in CUT:
        assert f"no complete answer within {DEADLINE:g} s" in error, error
    elif kind == "oversized":
        assert any(said in error for said in (
            "larger than the answer limit", "unexpected answer", "non-JSON format")), error
    elif kind == "redirect-private":
        assert "169.254.169.254" in error or "HTTP 302" in error, error
    elif kind == "redirect-loopback":
        assert f"127.0.0.1:{target.port}" in error or "HTTP 307" in error, error
    assert "/admin/secrets" not in error and "/latest/meta-data" not in error, error


def expect_bounded(kind: str, attempt: Attempt, crashed: list[str]) -> None:
    """Checked last, so that a known defect does not hide another failure."""
    if crashed:
        raise Crashed(f"{crashed}: {attempt}")
    limit = DEADLINE + (CUT_GRACE if kind in CUT else GRACE)
    if attempt.seconds >= limit:
        raise Overrun(f"the pass took {attempt.seconds:.1f} s (limit {limit:g} s): {attempt}")
    if attempt.peak is not None and attempt.peak >= MEMORY_LIMIT:
        raise Unbounded(f"a {OVERSIZED}-byte answer made the pass allocate {attempt.peak} bytes "
                        f"(limit {MEMORY_LIMIT}): it was read whole")


@pytest.mark.parametrize("kind", kinds("slack-webhook"))
def test_slack_webhook_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                        caplog: pytest.LogCaptureFixture) -> None:
    check("slack-webhook", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("slack-bot"))
def test_slack_bot_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                    caplog: pytest.LogCaptureFixture) -> None:
    check("slack-bot", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("zendesk"))
def test_zendesk_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                  caplog: pytest.LogCaptureFixture) -> None:
    check("zendesk", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("jira"))
def test_jira_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                               caplog: pytest.LogCaptureFixture) -> None:
    check("jira", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("github"))
def test_github_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                 caplog: pytest.LogCaptureFixture) -> None:
    check("github", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("webhook"))
def test_webhook_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                  caplog: pytest.LogCaptureFixture) -> None:
    check("webhook", kind, tmp_path, target, caplog)


@pytest.mark.parametrize("kind", kinds("discord"))
def test_discord_sink_under_fault(kind: str, tmp_path: Path, target: Recorder,
                                  caplog: pytest.LogCaptureFixture) -> None:
    check("discord", kind, tmp_path, target, caplog)


EMAIL_KINDS = ("smtp-421", "smtp-451", "drop", "hang", "drip")
SMTP_ERRORS = {"smtp-421": "SMTP 421", "smtp-451": "SMTP 451", "drop": "closed the connection",
               "hang": f"no complete answer within {DEADLINE:g} s",
               "drip": f"no complete answer within {DEADLINE:g} s"}


@pytest.mark.parametrize("kind", kinds("email", EMAIL_KINDS))
def test_email_sink_under_fault(kind: str, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with remote("email", timeout=TIMEOUT) as far:
        front = SmtpFront(far.fake.port, kind if kind in CUT else "relay")
        run = SinkRun(far, tmp_path, settings={**far.settings, "port": front.port})
        try:
            if kind in SMTP_KINDS:  # every session meets the kind (a deck of it alone)
                far.fake.faults = SmtpFaults(14, 0.99, {k: int(k == kind) for k in SMTP_KINDS})
            try:
                attempt = run.dispatch()
            finally:
                far.fake.faults, front.mode = None, "relay"
            assert front.connections, "the sink connected"
            crashed = crashes(caplog)
            assert far.fake.messages == [], "no mail was taken during the fault"
            expect_retry(run, attempt)
            assert SMTP_ERRORS[kind] in attempt.alert["last_error"], attempt
            deliver_after(run)
        finally:
            run.close()
            front.stop()
    expect_bounded(kind, attempt, crashed)
