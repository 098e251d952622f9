"""E-mail destination: each alert as one multipart/alternative (text + HTML) message over SMTP.
Reports (spikes, digests) too, their chart inline: see :mod:`alerts.render.email`.

Transport: ``smtplib.SMTP`` + STARTTLS (default), ``smtplib.SMTP_SSL`` (implicit TLS) or plain
SMTP to a relay on this machine only. The TLS context comes from
``ssl.create_default_context(cafile=ca_file)``, so the certificate chain *and* the host name are
always verified. If the server does not offer STARTTLS we stop: falling back to plain text would
send the password and the alert in clear. We log in only after TLS is up.

Exactly-once: SMTP has no idempotency key and no way to ask "did you already take this?". Each
message carries a ``Message-ID`` derived from the alert id (the same on every retry) and an
``X-Listener-Alert-Id`` header; mail clients and servers that collapse messages with the same
Message-ID (Gmail in one mailbox, for example) hide a duplicate. The window that remains: the
server accepted the final ``.`` of DATA (it will deliver) but its ``250`` never reached us
(timeout, dropped connection), or we crashed before dispatch recorded the delivery; the retry
then sends a second copy with the same Message-ID. A failure after acceptance (QUIT timing out)
is not reported as a failure, so it cannot cause a retry.

Incident updates: a report of kind ``incident_update`` whose ``reply_to`` is the ``Message-ID``
this sink returned for the incident's first mail is a new mail with ``In-Reply-To`` and
``References`` naming that mail (RFC 5322 §3.6.4) and the subject ``Re: <its own subject>``, so
mail clients show it in the first mail's conversation (Gmail also wants the subjects to match
once ``Re:`` is stripped, and they do not: an update's title says how many reports are new).
Its own Message-ID comes from its own alert id, as for every mail, so the window above is the
same: an answer lost after the server took the update means a second copy, with the same
Message-ID. A ``reply_to`` that is not a plain msg-id is logged and the update sent unthreaded.

Secrets: the password is a ``repr=False`` field, registered with :mod:`listener.core.log` for
redaction, never put in an exception (server replies are scrubbed of it and of its AUTH base64
forms), and smtplib's ``debuglevel`` stays 0 (smtplib prints the AUTH exchange when it is on).
Exceptions are raised ``from None`` so no chained traceback carries a server's raw reply.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from alerts.render.email import html_body, plain_body, subject_line, write_report
from alerts.sinks._smtp_text import recipient_replies, scrub, secret_forms
from alerts.sinks.base import SinkConfig
from listener.core.errors import ConfigError, DeliveryError
from listener.core.log import register_secret
from listener.core.models import AlertMessage, ReportMessage

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FALLBACK_DOMAIN = "listener.invalid"
_HOST = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$")
# An addr-spec with a dot-atom local part (RFC 5322 atext) and an ASCII (punycode) domain: no
# display names, quotes, spaces or line breaks, so nothing can be smuggled into To/From.
_ADDRESS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$")
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]")
# A msg-id (RFC 5322 §3.6.4) as we write them: <left@right>, printable ASCII, no spaces or <>.
_ID_PART = r"[\x21-\x3b\x3d\x3f\x41-\x7e]"  # printable ASCII but < > @
_MSG_ID = re.compile(rf"^<?({_ID_PART}{{1,200}}@{_ID_PART}{{1,253}})>?$")
Phase = Literal["connect", "starttls", "login", "send", "sent"]


class EmailSinkConfig(SinkConfig):
    """An SMTP submission server and the addresses to alert."""

    # The config loader prints pydantic's messages; never let them echo the password back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["email"] = Field("email", description="always 'email'")
    host: str = Field(description="SMTP server host name or IP address, e.g. smtp.example.com")
    port: int = Field(
        587, ge=1, le=65535,
        description="SMTP port: 587 (submission with STARTTLS, the default); with security "
        "'ssl' the default is 465",
    )
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls",
        description="starttls (upgrade to TLS, refuse servers that do not offer it), ssl "
        "(implicit TLS, usually port 465) or none (plain SMTP: only to localhost/127.0.0.1)",
    )
    username: str | None = Field(
        None, repr=False, description='SMTP AUTH user name (give it as {"$env": NAME})'
    )
    password: str | None = Field(
        None, repr=False, description='SMTP AUTH password (a secret: give it as {"$env": NAME})'
    )
    from_address: str = Field(description="sender address (envelope and From:), e.g. a@b.com")
    to: list[str] = Field(min_length=1, max_length=100, description="recipient addresses")
    subject_prefix: str = Field(
        "[listener]", max_length=50, description="text at the start of every subject line"
    )
    timeout: float = Field(
        30, gt=0, le=300, description="seconds to wait for the server to connect and to answer"
    )
    ca_file: str | None = Field(
        None, description="PEM CA bundle to trust instead of the system's (private mail servers)"
    )
    min_interval: float = Field(0, ge=0, description="seconds between two alert e-mails")

    @field_validator("host")
    @classmethod
    def _plain_host(cls, host: str) -> str:
        host = host.strip()
        if not _HOST.match(host):
            raise ValueError("host must be a bare host name or IP address (no scheme or spaces)")
        return host

    @field_validator("from_address")
    @classmethod
    def _sender(cls, address: str) -> str:
        return _check_address(address)

    @field_validator("to")
    @classmethod
    def _recipients(cls, addresses: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_address(a) for a in addresses))

    @field_validator("subject_prefix")
    @classmethod
    def _one_line(cls, prefix: str) -> str:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in prefix):
            raise ValueError("subject_prefix must not contain line breaks or control characters")
        return prefix.strip()

    @model_validator(mode="after")
    def _secure_enough(self) -> EmailSinkConfig:
        """Plain SMTP would carry the password (and alerts) in clear over a network."""
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.security == "none":
            if self.host.lower() not in LOCAL_HOSTS:
                raise ValueError(
                    f"security 'none' sends mail in clear text; it is only allowed for a relay on "
                    f"localhost/127.0.0.1, not '{self.host}': use starttls or ssl"
                )
            if self.username is not None:
                raise ValueError("username/password need TLS: use security starttls or ssl")
        if self.security == "ssl" and "port" not in self.model_fields_set:
            self.port = 465
        return self


def _check_address(address: str) -> str:
    address = address.strip()
    if not _ADDRESS.match(address):
        raise ValueError(f"'{address[:100]}' is not a plain e-mail address such as a@example.com")
    return address


class EmailSink:
    """Sends one e-mail per alert; the remote id is the message's ``Message-ID``."""

    # Config first: once ``type`` is assigned below, it shadows the builtin in this class body.
    Config: ClassVar[type[EmailSinkConfig]] = EmailSinkConfig
    type: ClassVar[str] = "email"

    def __init__(self, config: EmailSinkConfig) -> None:
        self.name = config.name
        self.min_interval = config.min_interval
        self._config = config
        self._server = f"{config.host}:{config.port}"
        register_secret(config.password)
        self._secrets = secret_forms(config.username, config.password)
        self._context = _tls_context(config)

    def __repr__(self) -> str:
        security = self._config.security
        return f"EmailSink(name={self.name!r}, server={self._server!r}, security={security!r})"

    def compose(self, message: AlertMessage | ReportMessage) -> EmailMessage:
        """The e-mail for one alert or report; the same alert always gets the same Message-ID."""
        config = self._config
        mail = EmailMessage(policy=SMTP_POLICY)
        parent = self._parent(message)
        if isinstance(message, ReportMessage):  # with the chart inline, if there is one
            write_report(mail, config.subject_prefix, message, reply=parent is not None)
        else:
            mail["Subject"] = subject_line(config.subject_prefix, message)
            mail.set_content(plain_body(message))
            mail.add_alternative(html_body(message), subtype="html")
        mail["From"] = config.from_address
        mail["To"] = ", ".join(config.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.alert_id, config.from_address)
        if parent is not None:  # an incident update: in the first mail's conversation
            mail["In-Reply-To"] = parent
            mail["References"] = parent
        mail["X-Listener-Alert-Id"] = _id_token(message.alert_id)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to us
        return mail

    def _parent(self, message: AlertMessage | ReportMessage) -> str | None:
        """``<id@domain>`` of the mail an incident update answers, when it is a plain msg-id."""
        if not isinstance(message, ReportMessage) or not message.reply_to:
            return None
        match = _MSG_ID.fullmatch(message.reply_to.strip())
        if match is None:
            log.warning("e-mail destination '%s' (alert %s): reply_to is not a Message-ID; the "
                        "update is sent as a mail of its own", self.name, message.alert_id)
            return None
        return f"<{match.group(1)}>"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """One SMTP session; returns the Message-ID, or raises DeliveryError."""
        mail = self.compose(message)
        progress = _Progress()
        try:
            refused = self._transmit(mail, progress)
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            failure = self._describe(exc, progress.phase)
            if failure is None:
                raise  # not a delivery failure but a bug: keep the traceback
            where = f"e-mail destination '{self.name}' (alert {message.alert_id})"
            raise DeliveryError(
                f"{where}: {failure.what}", status=failure.status,
                body_snippet=failure.snippet, retryable=failure.retryable,
            ) from None  # the chained smtplib error holds the server's unscrubbed reply
        if refused:  # accepted for the others: a retry would duplicate their copy
            log.warning(
                "e-mail destination '%s' (alert %s): delivered, but the server refused %s",
                self.name, message.alert_id, recipient_replies(refused, self._secrets),
            )
        return str(mail["Message-ID"])

    def close(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP connection."""

    def check(self) -> str:
        """``listener doctor``: connect, EHLO, STARTTLS and log in as configured, then QUIT.

        No mail is sent, so recipients and the sender address are not checked.
        """
        config, progress = self._config, _Progress()
        try:
            _hang_up(self._session(progress), polite=True)
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            failure = self._describe(exc, progress.phase)
            if failure is None:
                raise
            raise DeliveryError(f"e-mail destination '{self.name}': {failure.what}",
                                status=failure.status, body_snippet=failure.snippet,
                                retryable=False) from None
        steps = ["EHLO", *(["STARTTLS"] if config.security == "starttls" else []),
                 *(["login"] if progress.phase == "login" else [])]
        return f"{self._server} ({config.security}): {', '.join(steps)} ok; no mail sent"

    def _session(self, progress: _Progress) -> smtplib.SMTP:
        """Connect, EHLO, secure and log in as configured; ``progress.phase`` says how far."""
        config = self._config
        if config.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=self._context
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            smtp.ehlo()
            if config.security == "starttls":
                progress.phase = "starttls"
                smtp.starttls(context=self._context)  # SMTPNotSupportedError if not offered
            if config.username is not None and config.password is not None:
                progress.phase = "login"
                smtp.login(config.username, config.password)
        except BaseException as exc:  # the server still answers a coded reply: polite QUIT
            _hang_up(smtp, polite=isinstance(exc, smtplib.SMTPResponseException))
            raise
        return smtp

    def _transmit(self, mail: EmailMessage, progress: _Progress) -> dict[str, tuple[int, bytes]]:
        """Open a session, send; ``progress.phase`` says how far it got."""
        config = self._config
        smtp = self._session(progress)
        talking = False  # the server still answers: worth a polite QUIT
        try:
            progress.phase = "send"
            refused = smtp.send_message(mail, config.from_address, config.to)
            progress.phase, talking = "sent", True
            return refused
        except smtplib.SMTPResponseException:
            talking = True
            raise
        finally:
            _hang_up(smtp, polite=talking)

    def _describe(self, exc: BaseException, phase: Phase) -> _Failure | None:
        """What happened, what to do, and whether a retry can help; None for a bug."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            text = recipient_replies(exc.recipients, self._secrets)
            codes = [code for code, _ in exc.recipients.values()]
            temporary = [code for code in codes if 400 <= code < 500]
            if temporary:
                return _Failure(f"recipients refused for now ({text}); dispatch will retry",
                                True, temporary[0], text)
            return _Failure(f"the server refused every recipient ({text}); check 'to'",
                            False, max(codes, default=None), text)
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._describe_reply(exc, phase)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            advice = _NOT_SUPPORTED.get(phase, _NOT_SUPPORTED["send"])
            return _Failure(advice.format(server=self._server), False)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return _Failure(
                f"the TLS certificate of {self._server} failed verification "
                f"({exc.verify_message}); configuration, not retried: set ca_file to the CA "
                "that signed the server's certificate, or make host match its name", False)
        if isinstance(exc, UnicodeError):  # smtplib encodes AUTH as ASCII
            if phase != "login":
                return None
            return _Failure("username or password is not ASCII; SMTP AUTH cannot send it", False)
        return _Failure(self._describe_network(exc, phase), True)

    def _describe_reply(self, exc: smtplib.SMTPResponseException, phase: Phase) -> _Failure:
        """A coded reply: 5xx is permanent (park it), 4xx temporary (retry)."""
        code, text = exc.smtp_code, scrub(exc.smtp_error, self._secrets)
        permanent = 500 <= code < 600
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            what = "the server refused the username/password"
            advice = "check the credentials in the environment (the password is never shown)"
        elif isinstance(exc, smtplib.SMTPSenderRefused):
            what = "the server refused the sender"
            advice = "check that from_address may send through this server and account"
        elif isinstance(exc, smtplib.SMTPDataError):
            what = "the server refused the message"
            advice = "a content/spam policy or size limit; ask the mail administrator"
        else:
            what = f"the server refused the {phase} step"
            advice = "check host, port and security"
        if not permanent:
            advice = "a temporary refusal; dispatch will retry"
        return _Failure(f"{what} (SMTP {code} {text}); {advice}", not permanent, code, text)

    def _describe_network(self, exc: BaseException, phase: Phase) -> str:
        """Timeouts, drops, refusals and TLS failures: all worth a retry."""
        timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)
        during = {"connect": "while connecting", "send": "while sending"}.get(phase, f"in {phase}")
        if timed_out:
            what = f"no answer from {self._server} within {self._config.timeout:g}s {during}"
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            what = f"{self._server} closed the connection {during}"
        elif isinstance(exc, ConnectionRefusedError):
            what = f"connection refused by {self._server}; is the server up and the port right?"
        elif isinstance(exc, ssl.SSLError):
            what = (f"TLS with {self._server} failed ({exc.reason or type(exc).__name__}); if it "
                    "persists, check security and port (ssl is usually 465, starttls 587)")
        else:
            detail = scrub(str(exc), self._secrets)[:200]
            what = f"could not reach {self._server} ({type(exc).__name__}: {detail})"
        if phase == "send":
            what += ("; the server may have accepted it, so the retry can deliver a duplicate "
                     "(same Message-ID, which mail clients can collapse)")
        return what


class _Progress:
    """How far one SMTP session got; error messages and retry advice depend on it."""

    def __init__(self) -> None:
        self.phase: Phase = "connect"


@dataclass(frozen=True)
class _Failure:
    what: str
    retryable: bool
    status: int | None = None
    snippet: str = ""


_NOT_SUPPORTED: dict[str, str] = {
    "starttls": "{server} does not offer STARTTLS, so nothing was sent (never in clear text); "
    "use security 'ssl' if it speaks implicit TLS (port 465), or fix host/port",
    "login": "{server} offers no SMTP AUTH after TLS; remove username/password if it needs "
    "none, or use the submission port (587 or 465)",
    "send": "{server} lacks an SMTP extension this message needs (SMTPUTF8 for non-ASCII "
    "addresses); use ASCII addresses or another server",
}


def message_id(alert_id: str, from_address: str) -> str:
    """``<alert_id@from-domain>``: stable across retries, so duplicates can be recognised."""
    domain = from_address.rpartition("@")[2]
    return f"<{_id_token(alert_id)}@{domain if _DOMAIN.match(domain) else FALLBACK_DOMAIN}>"


def _id_token(alert_id: str) -> str:
    return _NOT_ID.sub("", alert_id)[:64] or "alert"


def _tls_context(config: EmailSinkConfig) -> ssl.SSLContext | None:
    """Verifying context (CERT_REQUIRED, check_hostname); a bad ca_file fails at start-up."""
    if config.security == "none":
        return None
    try:
        return ssl.create_default_context(cafile=config.ca_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"e-mail destination '{config.name}': cannot load ca_file '{config.ca_file}' "
            f"({type(exc).__name__}: {exc}); give a readable PEM file", key="ca_file"
        ) from None


def _hang_up(smtp: smtplib.SMTP, *, polite: bool) -> None:
    """QUIT when the server is still talking, else just close; never raises (the mail may
    already be accepted, and a failed goodbye must not turn into a retry)."""
    try:
        if polite:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()
