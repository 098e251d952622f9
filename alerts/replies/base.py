"""What a reply writer is: the contract every platform's writer keeps.

A writer posts one reply through the platform's API with the account's write credentials and
says what the platform created (:class:`Sent`). Replies must never be sent twice, so a writer
also answers :meth:`ReplyWriter.find`: "did an earlier attempt of this reply get there?" — asked
before every attempt after the first (a timeout, a lost answer, a worker killed mid-send). Each
platform answers it its own way (an idempotency key the server honours, a record key chosen by
us, a look at the account's recent replies to that post, a resource that holds one reply per
review); the writer's docstring says which.

Errors are the sinks' (:mod:`alerts.sinks.base`): :class:`RateLimited` with ``retry_after`` on
429, :class:`DeliveryError` with ``retryable=False`` for what retrying cannot fix (403 lacking
the write scope, a post that was deleted), anything else retried with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from listener.core.errors import DeliveryError, RateLimited


class AccountConfig(BaseModel):
    """Write credentials for one platform (``type``), for some brands' posts or all."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique name of this account")
    brands: list[str] | None = Field(
        None, description="answer posts of these brands (default: every brand's)")
    optional: bool = Field(
        False, description="leave this account out (with a warning) when a secret is unset")


@dataclass(frozen=True)
class Outgoing:
    """One reply, with what the platform needs to know about the post it answers."""

    reply_id: str  # ours: the idempotency key where the platform takes one
    text: str
    platform_id: str  # the post's id on its platform (Mastodon: the status URI)
    url: str | None
    author: str | None  # the customer's handle (Mastodon: mentioned so they are notified)
    thread: str | None
    raw: dict[str, Any] = field(default_factory=dict)  # what the collector kept of the post
    # the post itself: what the customer wrote, its stars and time (a store finds its review
    # by them where its write API does not know the collector's id)
    post_text: str = ""
    post_rating: float | None = None
    post_created_at: datetime | None = None


@dataclass(frozen=True)
class Sent:
    """What the platform created: its id, and a link people can open."""

    remote_id: str
    url: str | None = None


class ReplyWriter(Protocol):
    Config: ClassVar[type[AccountConfig]]
    type: ClassVar[str]  # the platform, as posts.platform names it
    name: str
    max_chars: ClassVar[int]  # the platform's limit for one reply

    def send(self, reply: Outgoing) -> Sent: ...

    def find(self, reply: Outgoing) -> Sent | None: ...

    def close(self) -> None: ...


__all__ = ["AccountConfig", "DeliveryError", "Outgoing", "RateLimited", "ReplyWriter", "Sent"]
