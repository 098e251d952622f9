"""EmailSink: the real smtplib client over real sockets (and TLS) to aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.dispatch import RetryPolicy, dispatch
from alerts.sinks.base import SinkConfig
from alerts.sinks.email import EmailSink, EmailSinkConfig
from listener.core.errors import ConfigError, DeliveryError
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import outbox
from tests.alerts.factories import make_alert
from tests.fakes.smtp_server import (
    ACCEPT_THEN_HANG_UP,
    FakeSMTPServer,
    SilentServer,
    TestCA,
)

USER, PASSWORD = "alice", "correct-horse-battery"
SENDER, RECIPIENT = "listener@example.com", "ops@example.com"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def ca_file(ca: TestCA, tmp_path: Path) -> str:
    return ca.write_ca(tmp_path / "ca.pem")


@pytest.fixture
def plain() -> Iterator[FakeSMTPServer]:
    with FakeSMTPServer() as fake:
        yield fake


@pytest.fixture
def secure(ca: TestCA) -> Iterator[FakeSMTPServer]:
    """STARTTLS required, AUTH (after TLS only) for one user."""
    with FakeSMTPServer(mode="starttls", tls=ca.server_context(), users={USER: PASSWORD}) as fake:
        yield fake


def make_sink(port: int, **overrides: Any) -> EmailSink:
    settings: dict[str, Any] = {"name": "mail-test", "host": "127.0.0.1", "port": port,
                                "security": "none", "from_address": SENDER, "to": [RECIPIENT],
                                "timeout": 5}
    settings.update(overrides)
    return EmailSink(EmailSinkConfig(**settings))


def secure_sink(port: int, ca_file: str | None, **overrides: Any) -> EmailSink:
    settings = {"security": "starttls", "username": USER, "password": PASSWORD,
                "ca_file": ca_file, **overrides}
    return make_sink(port, **settings)


def deliver_error(sink: EmailSink, **alert: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert(**alert))
    return info.value


def parts(fake: FakeSMTPServer, index: int = 0) -> tuple[Any, str, str]:
    mail = fake.messages[index].message
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    return mail, text, html


# -- delivery -------------------------------------------------------------------------------


def test_plain_localhost_delivers_multipart_with_stable_message_id(plain: FakeSMTPServer) -> None:
    remote_id = make_sink(plain.port).send(make_alert(alert_id="0123abcd" * 4))
    assert remote_id == "<0123abcd0123abcd0123abcd0123abcd@example.com>"
    (received,) = plain.messages
    assert received.mail_from == SENDER and received.rcpt_tos == (RECIPIENT,)
    mail, text, html = parts(plain)
    assert mail["Message-ID"] == remote_id
    assert mail["X-Listener-Alert-Id"] == "0123abcd" * 4
    assert (mail["From"], mail["To"], mail["Auto-Submitted"]) == (SENDER, RECIPIENT,
                                                                  "auto-generated")
    assert mail["Date"] and mail["Subject"].startswith("[listener] [!] Acme · mastodon")
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    for body in (text, html):
        for expected in ("Acme", "mastodon", "jane", "1,234 followers", "negative 0.91",
                         "high (0.83)", "negative-mentions", "0123abcd" * 4,
                         "support is not answering"):
            assert expected in body
    assert "Link: https://mastodon.example/@jane/110000000000000001" in text
    assert ('<a href="https://mastodon.example/@jane/110000000000000001" '
            'rel="noopener noreferrer"') in html


def test_retry_sends_the_same_message_id(plain: FakeSMTPServer) -> None:
    """SMTP has no idempotency key: a retry is a second mail, recognisable as the same one."""
    sink = make_sink(plain.port)
    first = sink.send(make_alert())
    second = sink.send(make_alert(attempt=2))
    assert first == second
    assert [m.message["Message-ID"] for m in plain.messages] == [first, first]


def test_ambiguous_failure_is_retryable_and_the_retry_keeps_the_message_id(
    plain: FakeSMTPServer,
) -> None:
    """The remaining window: the server kept the mail but the client never heard its 250."""
    plain.reply("DATA", ACCEPT_THEN_HANG_UP)
    sink = make_sink(plain.port)
    error = deliver_error(sink)
    assert error.retryable is True and "duplicate" in str(error) and "Message-ID" in str(error)
    remote_id = sink.send(make_alert(attempt=2))
    assert [m.message["Message-ID"] for m in plain.messages] == [remote_id, remote_id]


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_starttls_then_auth(ca: TestCA, ca_file: str, mechanism: str) -> None:
    with FakeSMTPServer(mode="starttls", tls=ca.server_context(), users={USER: PASSWORD},
                        mechanisms=(mechanism,)) as fake:
        remote_id = secure_sink(fake.port, ca_file).send(make_alert())
        (received,) = fake.messages
        assert [(a.mechanism, a.success) for a in fake.auth_attempts] == [(mechanism, True)]
    assert received.tls is True and received.login == USER
    assert received.message["Message-ID"] == remote_id


def test_implicit_tls(ca: TestCA, ca_file: str) -> None:
    with FakeSMTPServer(mode="ssl", tls=ca.server_context(), users={USER: PASSWORD}) as fake:
        sink = secure_sink(fake.port, ca_file, security="ssl")
        assert sink.send(make_alert()) == "<a1b2c3d4e5f6@example.com>"
        (received,) = fake.messages
    assert received.tls is True and received.login == USER


def test_quit_timeout_after_acceptance_is_still_delivered(plain: FakeSMTPServer) -> None:
    plain.quit_delay = 2.0
    assert make_sink(plain.port, timeout=0.3).send(make_alert()).startswith("<a1b2c3d4e5f6@")
    assert len(plain.messages) == 1


def test_partial_refusal_is_delivered_with_a_warning(
    plain: FakeSMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    plain.reply("RCPT", "550 5.1.1 <gone@example.com>: Recipient address rejected")
    sink = make_sink(plain.port, to=["gone@example.com", RECIPIENT])
    assert sink.send(make_alert()) is not None  # a retry would duplicate RECIPIENT's copy
    assert plain.messages[0].rcpt_tos == (RECIPIENT,)
    assert "gone@example.com: 550" in caplog.text


# -- refusals and failures ------------------------------------------------------------------


def test_wrong_password_is_not_retryable(secure: FakeSMTPServer, ca_file: str) -> None:
    sink = secure_sink(secure.port, ca_file, password="wrong-password-123")
    error = deliver_error(sink)
    assert error.retryable is False and error.status == 535
    assert "535" in str(error) and "credentials" in str(error) and "mail-test" in str(error)
    assert "wrong-password-123" not in f"{error} {error!r} {error.body_snippet}"
    assert secure.messages == []


@pytest.mark.parametrize(
    ("command", "answer", "retryable"),
    [
        ("RCPT", "550 5.1.1 <ops@example.com>: Recipient address rejected: User unknown", False),
        ("RCPT", "450 4.2.0 <ops@example.com>: Recipient address rejected: Greylisted", True),
        ("MAIL", "553 5.7.1 <listener@example.com>: Sender address rejected: not owned", False),
        ("MAIL", "421 4.7.0 Too many connections, closing transmission channel", True),
        ("DATA", "550 5.7.1 Message rejected as spam", False),
        ("DATA", "451 4.3.0 Temporary local problem", True),
        ("DATA", "452 4.3.1 Insufficient system storage", True),
    ],
)
def test_smtp_codes(plain: FakeSMTPServer, command: str, answer: str, retryable: bool) -> None:
    plain.reply(command, answer)  # type: ignore[arg-type]
    error = deliver_error(make_sink(plain.port))
    code = int(answer[:3])
    assert error.retryable is retryable and error.status == code
    assert str(code) in str(error) and answer[4:30] in str(error)
    assert plain.messages == []


def test_silent_server_times_out_retryable() -> None:
    with SilentServer() as silent:
        error = deliver_error(make_sink(silent.port, timeout=0.3))
    assert error.retryable is True and error.status is None
    assert "no answer" in str(error) and "0.3s" in str(error)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = deliver_error(make_sink(port))
    assert error.retryable is True and "connection refused" in str(error)


def test_missing_starttls_is_refused_before_anything_is_sent(plain: FakeSMTPServer) -> None:
    sink = make_sink(plain.port, security="starttls", username=USER, password=PASSWORD)
    error = deliver_error(sink)
    assert error.retryable is False
    assert "does not offer STARTTLS" in str(error) and "security 'ssl'" in str(error)
    assert plain.messages == [] and plain.auth_attempts == []  # no password, no alert in clear


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate_is_not_retryable(ca: TestCA, security: str) -> None:
    mode = "ssl" if security == "ssl" else "starttls"
    with FakeSMTPServer(mode=mode, tls=ca.server_context(), users={USER: PASSWORD}) as fake:
        error = deliver_error(secure_sink(fake.port, None, security=security))
        assert fake.messages == [] and fake.auth_attempts == []
    assert error.retryable is False
    assert "failed verification" in str(error) and "ca_file" in str(error)


def test_certificate_for_another_name_is_not_retryable(tmp_path: Path) -> None:
    other = TestCA("mail.example.test")
    ca_file = other.write_ca(tmp_path / "other.pem")
    with FakeSMTPServer(mode="starttls", tls=other.server_context()) as fake:
        error = deliver_error(make_sink(fake.port, security="starttls", ca_file=ca_file))
    assert error.retryable is False and "mismatch" in str(error)


# -- untrusted content ----------------------------------------------------------------------

HOSTILE = ("<script>alert(1)</script> @channel @someuser [x](javascript:alert(1)) "
           '![](http://evil/pixel) {{config.SECRET}} <img src=x onerror=alert(1)> "quoted" &amp;')


def test_hostile_text_is_inert_and_headers_cannot_be_injected(plain: FakeSMTPServer) -> None:
    alert = make_alert(text=HOSTILE, brand="Acme\r\nBcc: evil@example.com",
                       author='<b onmouseover="x">mallory</b>\r\nX-Evil: 1',
                       url="javascript:alert(document.cookie)", rules=("r<1>",))
    make_sink(plain.port).send(alert)
    (received,) = plain.messages
    assert received.rcpt_tos == (RECIPIENT,)
    mail, text, html = parts(plain)
    assert mail["Bcc"] is None and mail["X-Evil"] is None
    assert "Bcc: evil@example.com" in mail["Subject"] and "\n" not in mail["Subject"]
    header_block = received.data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith((b"bcc:", b"x-evil:"))
                   for line in header_block.split(b"\r\n"))
    for raw in ("<script", "<img", "<b ", "onmouseover=\"", "href=\"javascript", "<1>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "{{config.SECRET}}" in html
    assert "&amp;amp;" in html and "<a " not in html  # unsafe URL: no link at all
    assert "javascript:" in text.split("Post:")[1] and "Link: none" in text


def test_links_only_for_safe_urls(plain: FakeSMTPServer) -> None:
    make_sink(plain.port).send(make_alert(url='https://ex.example/p?a=1&b="x"<y>'))
    _, _, html = parts(plain)
    assert html.count("<a ") == 1
    assert 'href="https://ex.example/p?a=1&amp;b=%22x%22%3Cy%3E" rel="noopener noreferrer"' in html


def test_long_text_is_cut(plain: FakeSMTPServer) -> None:
    make_sink(plain.port).send(make_alert(text="&" * 50_000))
    mail, text, html = parts(plain)
    assert len(plain.messages[0].data) < 30_000
    assert html.count("&amp;") < 1_100 and "…" in html and "…" in text
    assert len(mail["Subject"]) <= 200


# -- secrets and configuration --------------------------------------------------------------


def test_password_never_leaks(
    secure: FakeSMTPServer, ca_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-password-456"
    sinks = [secure_sink(secure.port, ca_file), secure_sink(secure.port, ca_file, password=wrong),
             secure_sink(secure.port, None)]
    secure.reply("DATA", "554 5.7.1 rejected")
    errors: list[DeliveryError] = []
    for sink in sinks:
        try:
            sink.send(make_alert())
        except DeliveryError as exc:
            errors.append(exc)
    with SilentServer() as silent:
        errors.append(deliver_error(secure_sink(silent.port, ca_file, timeout=0.2)))
    assert len(errors) == 4
    visible = [caplog.text] + [r.getMessage() for r in caplog.records]  # the fake's logs too
    visible += [repr(s) for s in sinks] + [repr(s._config) for s in sinks]
    visible += [f"{e!s} {e!r} {e.body_snippet}" for e in errors]
    for text in visible:
        assert PASSWORD not in text and wrong not in text


def test_validation_errors_hide_the_password() -> None:
    with pytest.raises(ValidationError) as info:
        EmailSinkConfig(name="m", host="smtp.example.com", security="none", username=USER,
                        password="hunter2-secret", from_address=SENDER, to=[RECIPIENT])
    assert "hunter2-secret" not in str(info.value) and "clear text" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"host": "smtp.example.com", "security": "none"}, "only allowed for a relay"),
        ({"security": "none", "username": USER, "password": PASSWORD}, "need TLS"),
        ({"username": USER}, "both username and password"),
        ({"host": "smtp://smtp.example.com"}, "bare host name"),
        ({"to": ["ops@example.com\r\nBcc: evil@example.com"]}, "plain e-mail address"),
        ({"to": []}, "at least 1"),
        ({"from_address": "Listener <l@example.com>"}, "plain e-mail address"),
        ({"subject_prefix": "[x]\r\nBcc: evil@example.com"}, "line breaks"),
    ],
)
def test_config_is_validated(overrides: dict[str, Any], complaint: str) -> None:
    settings = {"name": "m", "host": "127.0.0.1", "from_address": SENDER, "to": [RECIPIENT]}
    with pytest.raises(ValidationError) as info:
        EmailSinkConfig(**{**settings, **overrides})
    assert complaint in str(info.value)


def test_config_defaults_and_descriptions() -> None:
    config = EmailSinkConfig.model_validate(
        {"type": "email", "name": "m", "host": "smtp.example.com", "from_address": SENDER,
         "to": [RECIPIENT]})
    assert (config.port, config.security, config.timeout, config.min_interval) == (587,
                                                                                  "starttls",
                                                                                  30, 0)
    assert config.subject_prefix == "[listener]" and config.ca_file is None
    ssl_config = EmailSinkConfig(name="m", host="smtp.example.com", security="ssl",
                                 from_address=SENDER, to=[RECIPIENT])
    assert ssl_config.port == 465
    ours = set(EmailSinkConfig.model_fields) - set(SinkConfig.model_fields)
    assert all(EmailSinkConfig.model_fields[name].description for name in ours)


def test_unreadable_ca_file_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError) as info:
        make_sink(587, security="starttls", ca_file=str(bad))
    assert "ca_file" in str(info.value)


# -- through dispatch -----------------------------------------------------------------------


def test_dispatch_records_the_message_id(tmp_path: Path, plain: FakeSMTPServer) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    slept: list[float] = []
    db = store.open_db(tmp_path / "d.db")
    try:
        post = Post("x", "42", "<b>the app is down</b>", now, source="s", brand="Acme")
        store.store_page(db, "s", Page(posts=[post]), now)
        (row,) = store.posts_to_score(db, "m", "v", 10)
        store.save_scores(db, [(row.id, Score("negative", 0.9, 0.05, 0.05, 0.8, "m", "v"),
                                None)], now)
        (scored,) = store.scores_to_evaluate(db, 10)
        outbox.enqueue(db, [outbox.NewAlert("r", "mail", scored.post_id, scored.score_id,
                                            "x:42")], [scored.score_id], now)
        alert_id = outbox.alert_id("r", "x:42", "mail")
        result = dispatch(db, {"mail": make_sink(plain.port, name="mail")}, RetryPolicy(),
                          clock=lambda: now, sleep=slept.append, strict=True)
        row = db.execute("SELECT status, attempts, remote_id FROM alerts").fetchone()
    finally:
        db.close()
    assert result.delivered == 1
    assert row == ("delivered", 1, f"<{alert_id}@example.com>")
    mail, _, html = parts(plain)
    assert mail["X-Listener-Alert-Id"] == alert_id and "&lt;b&gt;the app is down" in html
    assert slept == []


def test_alerts_differ_only_by_id(plain: FakeSMTPServer) -> None:
    """Two alerts for the same post (two rules) are two mails with two Message-IDs."""
    sink = make_sink(plain.port)
    base = make_alert()
    ids = {sink.send(base), sink.send(replace(base, alert_id="ffff0000"))}
    assert len(ids) == 2 and len(plain.messages) == 2


def test_tls_to_a_plain_port_is_retryable_with_advice(plain: FakeSMTPServer) -> None:
    error = deliver_error(make_sink(plain.port, security="ssl", timeout=1))
    assert error.retryable is True and "check security and port" in str(error)
