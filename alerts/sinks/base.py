"""The Sink interface: deliver one rendered alert, or raise an error that says whether to retry."""

from __future__ import annotations

from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import AlertMessage, ReportMessage


class SinkConfig(BaseModel):
    """Settings every destination has; each sink module subclasses it with its own keys."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique name rules route to")
    optional: bool = Field(
        False, description="skip this destination (with a warning) when one of its secrets is unset"
    )


class Sink(Protocol):
    """A configured destination.

    ``send`` gets an :class:`AlertMessage` (one post) or a :class:`ReportMessage` (a spike, a
    digest, alerts held over quiet hours) and returns the remote id of what it created (Slack ts,
    ticket id) or None. It raises
    :class:`RateLimited` (with ``retry_after``) on 429, and :class:`DeliveryError` with
    ``retryable=False`` for answers that retrying cannot fix; anything else is retried by dispatch.
    """

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[SinkConfig]]
    type: ClassVar[str]
    name: str

    def send(self, message: AlertMessage | ReportMessage) -> str | None: ...

    def close(self) -> None: ...

    # Optional: ``check(self) -> str | None`` proves the destination is reachable and the
    # credentials work WITHOUT delivering anything (``listener doctor``): returns what it
    # verified, raises ``DeliveryError`` with the reason, or returns None when the remote
    # cannot be checked without posting (Slack incoming webhooks, generic webhooks).


def error_for_status(
    status: int, body: str, *, permanent: frozenset[int] = frozenset({400, 401, 403, 404, 410})
) -> DeliveryError:
    """Map an unsuccessful HTTP status to our exception; 429 is handled by callers (Retry-After).

    Only what retrying cannot fix parks an alert at once: the ``permanent`` statuses and the
    other 4xx client errors (but 408, 409 and 425, which ask for a retry). Anything else — 5xx,
    and also an unexpected 2xx or 3xx (a captive portal, a proxy's redirect while the network
    flaps) — is retried with backoff and parked only after ``dispatch.max_attempts``, its cause
    in `listener alerts list`: an alert delivered late beats one never delivered."""
    client_error = 400 <= status < 500 and status not in (408, 409, 425)
    retryable = status not in permanent and not client_error
    return DeliveryError(
        f"remote answered HTTP {status}", status=status, body_snippet=body, retryable=retryable
    )


def retry_after_seconds(value: str | None, default: float = 30.0) -> float:
    """Parse a Retry-After header (seconds form); fall back to ``default`` when absent/garbled."""
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


__all__ = ["DeliveryError", "RateLimited", "Sink", "SinkConfig", "error_for_status"]
