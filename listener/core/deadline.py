"""A total deadline for a block of network calls, whatever client library makes them.

Every client we use (httpx, urllib inside slack_sdk and feedparser, requests inside tweepy, praw
and Mastodon.py, smtplib) has per-operation timeouts only: connect, then each read. A server
that answers one byte every few seconds resets the read timer forever, and a dispatch or poll
stuck on it held up every other destination and ignored SIGTERM. Client-level total timeouts
do not exist in most of these libraries, so the deadline works one floor lower, on the sockets:

- a process-wide audit hook (PEP 578, ``sys.addaudithook``) sees the ``socket.connect`` event
  of every socket and files it under the thread that connects it;
- when a :func:`deadline` block's time passes (a timer), or the daemon is stopping
  (:func:`expire_all`), the sockets of the block's thread are shut down
  (``shutdown(SHUT_RDWR)``): the blocked read returns at once, the library raises its own
  connection error, and :func:`deadline` turns it into
  :class:`~listener.core.errors.DeadlineExceeded`. All the thread's sockets, not only those
  connected inside the block: clients keep connections alive across calls (httpx, requests),
  and the one a slow answer arrives on may be older than the block. Cutting an idle pooled
  connection is harmless: both libraries check a pooled connection before reuse and open a
  new one when it was closed.

Nothing is patched, every library keeps its own error handling, and a block that finishes in
time costs one timer. Used around one delivery attempt (``alerts.dispatch``) and one page of a
poll (``listener.pipeline.collect``).
"""

from __future__ import annotations

import socket
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from listener.core.errors import DeadlineExceeded

_local = threading.local()
_active: set[Scope] = set()
_lock = threading.Lock()
_installed = False


class _Sockets:
    """The sockets one thread connected (weakly held: closed ones vanish)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)

    def cut(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected yet, or already closed: nothing to cut
                pass


def _thread_sockets() -> _Sockets:
    registry = getattr(_local, "sockets", None)
    if registry is None:
        registry = _local.sockets = _Sockets()
    return registry


class Scope:
    """One :func:`deadline` block: its thread's sockets, and whether it was cut off."""

    def __init__(self, what: str, seconds: float) -> None:
        self.what, self.seconds = what, seconds
        self.expired = False
        self._sockets = _thread_sockets()

    def expire(self) -> None:
        """Cut the block's connections (called from the timer's or a signal's thread)."""
        self.expired = True
        self._sockets.cut()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Runs for every audit event of the process: one comparison unless a socket connects."""
    if event == "socket.connect" and args and isinstance(args[0], socket.socket):
        _thread_sockets().add(args[0])
        if getattr(_local, "scope", None) is not None and _local.scope.expired:
            _local.scope.expire()  # connected after the deadline passed: no time left for it


def install() -> None:
    """File sockets from now on (the runtime calls it at start: sockets a client pools before
    the first deadline block must be known too). Idempotent."""
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_audit)  # cannot be removed; files sockets, nothing more
            _installed = True


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[Scope]:
    """Run the block's network calls with ``seconds`` in total; past that, its connections are
    cut and :class:`DeadlineExceeded` is raised (from whatever the library raised)."""
    install()
    scope = Scope(what, seconds)
    outer = getattr(_local, "scope", None)
    timer = threading.Timer(seconds, scope.expire)
    timer.daemon = True
    with _lock:
        _active.add(scope)
    _local.scope = scope
    timer.start()
    try:
        yield scope
    except Exception as exc:
        if scope.expired:
            raise DeadlineExceeded(what, seconds) from exc
        raise
    finally:
        timer.cancel()
        _local.scope = outer
        with _lock:
            _active.discard(scope)
    # a block that finished while its deadline passed keeps its result: a delivery that
    # landed is not made a failure (and sent again) by a timer that fired a moment too late


def expire_all() -> int:
    """Cut every block in progress, in every thread (the daemon is stopping); returns how many."""
    with _lock:
        scopes = list(_active)
    for scope in scopes:
        scope.expire()
    return len(scopes)
