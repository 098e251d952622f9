"""One pipeline process per database: an OS file lock next to the SQLite file.

``listener run --once`` (cron) and ``listener run`` (the daemon) both take an exclusive
``flock`` on ``<database>.lock`` before doing any work and hold it until the process ends. A
second run on the same database finds the lock taken and exits at once with
:data:`EXIT_LOCKED`, so overlapping cron runs never claim the same work twice.

Why ``flock`` and not a pid file: the kernel drops the lock when the process dies, however it
dies (SIGKILL, OOM, power cut), so a crash never leaves a stale lock that blocks the next run
and nothing has to guess whether a recorded pid is still alive. The pid written into the file is
only for the message the loser prints. ``flock`` locks are per open file description: they
work between processes on one machine, not over NFS — where SQLite's WAL does not work either.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from listener.core.errors import StorageError

EXIT_LOCKED = 75
"""Exit status when another run holds the lock: ``EX_TEMPFAIL`` from sysexits.h, "try again
later", so cron wrappers can tell "skipped, still busy" from a failure (status 1)."""


class LockHeld(StorageError):
    """Another ``listener run`` process holds the database's lock; nothing was done."""


@dataclass
class RunLock:
    """A held lock; :meth:`release` (or process exit) gives it back."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = -1


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def acquire(database: Path) -> RunLock:
    """Take the run lock of ``database`` without waiting; raises :class:`LockHeld` if taken.

    The descriptor is not inherited by child processes (``O_CLOEXEC``), so a subprocess that
    outlives us cannot keep the lock. A PostgreSQL database has no run lock: its workers
    claim their work (:mod:`listener.workers`).
    """
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise LockHeld(
            f"another listener run{holder} holds {path}: it is still working on this database, "
            "so this run does nothing and exits (the next run picks up whatever is left)"
        ) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(path, fd)


def _holder(fd: int) -> str:
    """`` (pid 1234)`` from the lock file, or nothing when it cannot be read yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
