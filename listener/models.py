"""Value objects shared by every stage. Frozen, so a stage cannot change what another produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime; injected so tests control time."""

Sleep = Callable[[float], None]

POST_KINDS = ("mention", "review")


def utcnow() -> datetime:
    """The default :data:`Clock`."""
    return datetime.now(UTC)


def to_iso(dt: datetime) -> str:
    """Fixed-width UTC text, so string order in SQLite is time order."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` or offset; naive is taken as UTC) into an aware UTC datetime."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Post:
    """One normalised post or review from any platform.

    ``(platform, platform_id)`` identifies it everywhere; ``source`` is the configured source name
    that collected it (two sources can watch the same platform).
    """

    platform: str
    platform_id: str
    text: str
    created_at: datetime
    source: str = ""
    url: str | None = None
    author: str | None = None
    author_followers: int | None = None
    lang: str | None = None
    kind: str = "mention"
    rating: float | None = None
    brand: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # the conversation this post belongs to, in the platform's terms (X conversation_id, Reddit
    # submission, HN story, Bluesky root): alerts about posts of one thread are threaded in Slack
    thread: str | None = None
    # brands beyond ``brand`` whose queries accept the post too: a post about two brands counts
    # in each brand's trends, rules and incidents (stored in ``post_extra_brands``)
    also_brands: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_id}"

    @property
    def brands(self) -> tuple[str, ...]:
        """Every brand the post is about: ``brand`` first, then ``also_brands``."""
        return ((self.brand,) if self.brand else ()) + tuple(
            b for b in self.also_brands if b != self.brand)


@dataclass(frozen=True)
class Rejected:
    """An input record a source could not turn into a Post: reported, skipped, never fatal."""

    where: str  # e.g. "posts.jsonl:17"
    reason: str


@dataclass(frozen=True)
class Page:
    """One unit of collected work, stored in one transaction.

    ``cursor`` is the source state *after* this page; ``None`` means "do not move the cursor yet"
    (e.g. a middle page of a newest-first search whose cursor may only advance when every page of
    the cycle is stored).
    """

    posts: list[Post]
    cursor: Any = None
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Score:
    """The classifier's verdict on one post, as stored."""

    sentiment: str
    p_negative: float
    p_neutral: float
    p_positive: float
    urgency: float
    model: str
    model_version: str


@dataclass(frozen=True)
class AlertMessage:
    """Everything a sink needs to render one alert; built by dispatch from the outbox row."""

    alert_id: str
    rules: tuple[str, ...]
    destination: str
    post: Post
    score: Score
    priority: str = "normal"
    # 1 on the first try. Sinks whose remote has no idempotency key (Jira, GitHub) search for
    # the alert id before creating again when attempt > 1: an earlier try may have landed.
    attempt: int = 1
    # remote id (Slack ts) of the first alert delivered to this destination about the same
    # conversation: sinks that can thread (Slack with a bot token) reply under it
    reply_to: str | None = None


@dataclass(frozen=True)
class ReportMessage:
    """An alert about many posts at once — a spike, a digest, alerts held over quiet hours.

    Built by dispatch from a ``reports`` row. ``facts`` are label/value pairs every sink shows as
    fields; ``examples`` are the posts a human should read first; ``chart_png`` is optional.
    """

    alert_id: str
    kind: str  # "spike" | "digest" | "held" | "incident" | "incident_update"
    name: str  # the spike detector / digest / rule that made it
    destination: str
    title: str
    window_start: datetime
    window_end: datetime
    brand: str | None = None
    source: str | None = None
    summary: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    terms: tuple[str, ...] = ()
    examples: tuple[tuple[Post, Score], ...] = ()
    chart_png: bytes | None = None
    numbers: dict[str, Any] = field(default_factory=dict)  # machine-readable (webhook JSON)
    priority: str = "normal"
    attempt: int = 1
    # an update to an earlier report at the same destination (an incident's new reports): the
    # remote id of that first message (Slack ts, ticket id or key, issue number, Message-ID),
    # so sinks that can thread or comment add to it instead of starting a new conversation
    reply_to: str | None = None
    parent_alert_id: str | None = None  # the outbox id of that first message

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.name,)
