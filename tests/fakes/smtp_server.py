"""A fake SMTP server for tests: aiosmtpd on 127.0.0.1, an ephemeral port, in its own thread.

Tests point the real ``smtplib`` client (through our sink) at it, so sockets, TLS handshakes,
certificate checks and the SMTP dialogue are all real; nothing of ours is mocked::

    ca = TestCA()
    with FakeSMTPServer(mode="starttls", tls=ca.server_context(), users={"alice": "pw"}) as smtp:
        smtp.reply("RCPT", "550 5.1.1 <bob@example.com>: Recipient address rejected")
        ...
        assert smtp.messages[0].message["Subject"]

Modes, as real submission servers offer them (RFC 3207, RFC 8314):
- ``plain``: no TLS at all (STARTTLS is not even advertised);
- ``starttls``: STARTTLS advertised and *required* before MAIL/AUTH (aiosmtpd answers 530);
- ``ssl``: implicit TLS from the first byte (port 465 style).
With ``users``, AUTH PLAIN and LOGIN are offered once TLS is up (never over plain text), a wrong
password gets ``535 5.7.8``, and MAIL before a successful AUTH gets ``530 5.7.0``.
:meth:`FakeSMTPServer.reply` scripts the next answer to MAIL, RCPT or DATA (FIFO per command);
The DATA answer :data:`ACCEPT_THEN_HANG_UP` records the message and then drops the connection
before answering: the client cannot know the mail was taken (SMTP's duplicate window);
:data:`ACCEPT_THEN_STALL` records it and holds the 250 for ``stall`` seconds (past the client's
timeout), and :data:`DROP` closes the connection at any command without accepting anything.
:attr:`FakeSMTPServer.faults`, if set, is asked for a reply whenever none is scripted (seeded
fault schedules).
``quit_delay`` holds back the answer to QUIT (the mail is already accepted by then).

:class:`SilentServer` accepts TCP connections and never sends a greeting: clients time out.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Mode = Literal["plain", "starttls", "ssl"]
Command = Literal["MAIL", "RCPT", "DATA"]
SERVER_NAME = "fake-smtp.test"
ACCEPT_THEN_HANG_UP = "accept-then-hang-up"  # DATA script: keep the mail, drop before the 250
ACCEPT_THEN_STALL = "accept-then-stall"  # DATA script: keep the mail, hold the 250 for `stall` s
DROP = "drop"  # any script: close the connection without answering (nothing is accepted)


class TestCA:
    """A throwaway CA (trustme) and a server certificate for 127.0.0.1 and localhost."""

    __test__ = False  # not a pytest test class

    def __init__(self, *names: str) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert(*(names or ("127.0.0.1", "localhost")))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # no client certificates
        self._cert.configure_cert(context)
        return context

    def write_ca(self, path: Path) -> str:
        """Write the CA certificate (PEM) for the client's ``ca_file``; returns the path."""
        self._ca.cert_pem.write_to_path(str(path))
        return str(path)


@dataclass(frozen=True)
class ReceivedMail:
    """One message the fake accepted: the envelope, the raw bytes, and how the client got here."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, message_from_bytes(self.data, policy=policy.default))


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


class _Controller(Controller):
    """aiosmtpd's Controller probes its own port at start-up: tell it the one the OS chose."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


class FakeSMTPServer:
    """A scriptable SMTP server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        mode: Mode = "plain",
        tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        quit_delay: float = 0.0,
        stall: float = 30.0,
    ) -> None:
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode!r} needs a server TLS context (TestCA.server_context())")
        self.mode, self.users, self.quit_delay = mode, dict(users or {}), quit_delay
        self._tls, self._mechanisms = tls, mechanisms
        self._lock = threading.Lock()
        self._script: dict[str, deque[str]] = {"MAIL": deque(), "RCPT": deque(), "DATA": deque()}
        self._messages: list[ReceivedMail] = []
        self._auth: list[AuthAttempt] = []
        self._controller: _Controller | None = None
        self.stall = stall
        # Fault injection: asked for MAIL, RCPT and DATA when no reply() is queued; returns a
        # reply (or DROP, ACCEPT_THEN_HANG_UP, ACCEPT_THEN_STALL) or None for the normal answer.
        self.faults: Callable[[str], str | None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSMTPServer:
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": 0, "ready_timeout": 10.0,
                                   "server_hostname": SERVER_NAME, "timeout": 30}
        if self.mode == "starttls":
            options.update(tls_context=self._tls, require_starttls=True)
        elif self.mode == "ssl":
            options.update(ssl_context=self._tls, auth_require_tls=False)  # already encrypted
        if self.users:
            excluded = [m for m in ("LOGIN", "PLAIN") if m not in self._mechanisms]
            options.update(authenticator=self._authenticate, auth_exclude_mechanism=excluded)
        self._controller = _Controller(_Handler(self), **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
        self._controller = None

    def __enter__(self) -> FakeSMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the fake SMTP server is not running; call start() first")
        return int(self._controller.port)

    # -- scripting and inspection ----------------------------------------------------------

    def reply(self, command: Command, answer: str) -> None:
        """Answer the next ``command`` with ``answer`` (e.g. ``"450 4.2.0 try later"``) once."""
        with self._lock:
            self._script[command].append(answer)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self._auth)

    # -- called from the server thread -----------------------------------------------------

    def _scripted(self, command: str) -> str | None:
        with self._lock:
            queue = self._script[command]
            if queue:
                return queue.popleft()
        return self.faults(command) if self.faults is not None else None

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = data.login.decode("utf-8", "replace")
        ok = self.users.get(login) == data.password.decode("utf-8", "replace")
        with self._lock:
            self._auth.append(AuthAttempt(mechanism, login, ok))
        return AuthResult(success=ok, auth_data=data if ok else None, handled=False)


class _Handler:
    """aiosmtpd handler hooks: scripted refusals, AUTH enforcement, recording."""

    def __init__(self, fake: FakeSMTPServer) -> None:
        self.fake = fake

    async def handle_MAIL(  # noqa: N802 - hook name required by aiosmtpd
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        if self.fake.users and not session.authenticated:
            return "530 5.7.0 Authentication required"
        scripted = self.fake._scripted("MAIL")
        if scripted:
            return _drop(server) if scripted == DROP else scripted
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        scripted = self.fake._scripted("RCPT")
        if scripted:
            return _drop(server) if scripted == DROP else scripted
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        scripted = self.fake._scripted("DATA")
        if scripted and scripted not in (ACCEPT_THEN_HANG_UP, ACCEPT_THEN_STALL):
            return _drop(server) if scripted == DROP else scripted
        content = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.fake._record(ReceivedMail(
            mail_from=str(envelope.mail_from), rcpt_tos=tuple(envelope.rcpt_tos), data=content,
            tls=self.fake.mode == "ssl" or session.ssl is not None, login=login,
        ))
        if scripted == ACCEPT_THEN_HANG_UP:
            return _drop(server)
        if scripted == ACCEPT_THEN_STALL:
            await asyncio.sleep(self.fake.stall)  # the client gives up first; stop() cancels it
        return "250 2.0.0 OK queued as FAKE0001"

    async def handle_QUIT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.fake.quit_delay:
            await asyncio.sleep(self.fake.quit_delay)
        return "221 2.0.0 Bye"


def _drop(server: SMTP) -> str:
    """Close the connection; the reply returned after it is never sent."""
    assert server.transport is not None
    server.transport.close()
    return "250 2.0.0 OK queued as FAKE0001"


class SilentServer:
    """Listens on 127.0.0.1 and never answers: the kernel completes the TCP handshake from the
    listen backlog, so the client connects, then waits in vain for the 220 greeting."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None

    def __enter__(self) -> SilentServer:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=8)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])
