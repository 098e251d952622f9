"""One exception tree for the whole project.

    ListenerError                     base: catch this at a job boundary
    ├── ConfigError                   bad YAML/value; names file, line and key path
    ├── MissingDependency             optional extra not installed; says what to pip install
    ├── SourceError                   a collector failed (network, bad response, bad credentials)
    ├── RateLimited                   remote asked us to wait; carries ``retry_after`` seconds
    ├── ClassifierError               model cannot be loaded or scored
    ├── DeadlineExceeded              network calls took longer than their total deadline
    ├── DeliveryError                 a sink refused or failed; carries ``status``, ``body_snippet``,
    │                                 and ``retryable`` (4xx such as a bad token are not)
    └── StorageError                  the database cannot be opened or migrated

Messages say what happened *and* what to do; only ``listener.cli`` turns them into exit codes.
"""

from __future__ import annotations


class ListenerError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(ListenerError):
    """The configuration is invalid; the message names file, line and key path."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        self.file, self.line, self.key = file, line, key
        where = ", ".join(
            part
            for part in (file, f"line {line}" if line else None, f"key '{key}'" if key else None)
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class MissingDependency(ListenerError):
    """An optional integration's library is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        self.package, self.extra = package, extra
        super().__init__(
            f"the '{package}' package is needed for this feature: "
            f"pip install 'social-listener[{extra}]'"
        )


class SourceError(ListenerError):
    """A collector could not fetch; the cursor was not advanced."""


class RateLimited(ListenerError):
    """The remote asked us to slow down; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ClassifierError(ListenerError):
    """The model could not be loaded or failed on a batch."""


class DeadlineExceeded(ListenerError):
    """A block of network calls (one delivery, one page of a poll) ran past its total deadline;
    its connections were cut (:mod:`listener.core.deadline`). Callers turn it into their own
    failure: a retry for a delivery, a failed poll for a source."""

    def __init__(self, what: str, seconds: float) -> None:
        self.what, self.seconds = what, seconds
        super().__init__(f"{what}: no complete answer within {seconds:g} s in total (a server "
                         "that answers slowly or not at all); cut off, retried later")


class DeliveryError(ListenerError):
    """A sink failed to deliver an alert.

    ``retryable`` is False for answers that will never change by retrying (bad token, unknown
    channel, invalid payload): such alerts are parked for a human instead of hammering the remote.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_snippet: str = "",
        retryable: bool = True,
    ) -> None:
        self.status, self.body_snippet, self.retryable = status, body_snippet[:300], retryable
        super().__init__(message)


class StorageError(ListenerError):
    """The database cannot be opened, locked for too long, or migrated."""
