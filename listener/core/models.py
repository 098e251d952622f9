"""Value objects shared by every stage. Frozen, so a stage cannot change what another produced."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime; injected so tests control time."""

Sleep = Callable[[float], None]

POST_KINDS = ("mention", "review")
SQLITE_INT_MAX = 2**63 - 1  # SQLite INTEGER is 64-bit signed: anything larger cannot be bound
RATING_MAX = 5.0  # reviews are rated 0 to 5 stars on every platform we read
MAX_RAW_DEPTH = 64  # raw JSON nested deeper than this is cut when it must be rewritten
_SURROGATE = re.compile("[\ud800-\udfff]")
_RAW_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode  # as storage encodes raw


def utcnow() -> datetime:
    """The default :data:`Clock`."""
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """``dt`` in UTC (naive is taken as UTC). A time within a day of year 1 or 9999 whose offset
    would carry it past the calendar (``0001-01-01T00:00+01:00``) is clamped to the calendar's
    edge instead of raising OverflowError: a post dated there is nonsense, but not a reason to
    lose it or to stop a stage."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if dt.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)


def to_iso(dt: datetime) -> str:
    """Fixed-width UTC text, so string order in SQLite is time order.

    Not ``strftime("%Y")``: glibc writes year 1 as ``1``, not ``0001``, which is not ISO 8601,
    sorts wrong and could never be parsed back (a post dated so would stop the rules stage).
    """
    return as_utc(dt).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` or offset; naive is taken as UTC) into an aware UTC datetime."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_iso_or_none(value: Any) -> datetime | None:
    """:func:`parse_iso` of a value read from a platform or a stored cursor, where anything
    may be: None when it is absent, not text, or not a time."""
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None


def clean_text(value: str) -> str:
    """``value`` as text UTF-8 can hold: surrogate pairs joined into their character, each lone
    surrogate replaced by U+FFFD.

    JSON escapes (``"\\ud800"``) and undecodable file names (surrogateescape) put surrogates in
    Python strings, and nothing that writes UTF-8 (SQLite, hashlib, HTTP clients, log streams)
    accepts them: one such character once stopped a whole source at every run. A pair is a
    character in disguise, so joining it loses nothing; a lone one never was a character.
    """
    if value.isascii() or _SURROGATE.search(value) is None:  # isascii is O(1): the usual path
        return value
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _text(value: Any) -> Any:
    """A text field: cleaned text; a number as its text (a source handing an int id gets a text
    id, as stored ids are compared as text); None stays None (storage refuses a missing
    required field, so that one post is rejected, not stored as "None")."""
    if value is None:
        return None
    return clean_text(value if isinstance(value, str) else str(value))


def clean_count(value: Any) -> int | None:
    """A count (followers) SQLite can store: above 2**63-1 clamped to it (a count that large is
    "very many" either way); negative, non-finite or not a number is unknown (None)."""
    if isinstance(value, str) and value.strip().isdigit():
        try:
            value = int(value)
        except ValueError:  # more digits than Python converts: very many
            return SQLITE_INT_MAX
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value)
    return None if value < 0 else min(value, SQLITE_INT_MAX)


def clean_rating(value: Any) -> float | None:
    """A rating of 0 to 5 as a float; anything else (out of range, NaN, inf, not a number) is
    no rating, which rules treat as "not a review score" rather than as 0 or 5 stars."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return number if 0.0 <= number <= RATING_MAX else None  # NaN fails both comparisons


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON-like value with every string (keys too) cleaned by :func:`clean_text`, NaN and
    infinities as null (they are not JSON), tuples as lists and other objects as their text;
    subtrees deeper than :data:`MAX_RAW_DEPTH` become null (raw is for reference only)."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_RAW_DEPTH:
        return None
    if isinstance(value, dict):
        return {_json_key(k): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, depth + 1) for v in value]
    return clean_text(str(value))


def _json_key(key: Any) -> Any:
    """A key the JSON encoder takes as it is (numbers, booleans, None) or cleaned text."""
    if key is None or isinstance(key, bool | int | float):
        return key
    return _text(key)


def clean_raw(raw: Any) -> dict[str, Any]:
    """``raw`` as a dict that encodes to UTF-8 JSON; the same object when it already does.

    The check is one C-speed encode (what storage does anyway); only a raw that holds a
    surrogate, a NaN/infinity, a circular or too deep structure is walked and rebuilt.
    """
    if not isinstance(raw, dict):
        return {} if raw is None else {"value": clean_json(raw)}
    if not raw:
        return raw
    try:
        text = _RAW_JSON(raw)
    except (ValueError, TypeError, RecursionError):  # circular, unencodable key, too deep
        return clean_json(raw)
    if _SURROGATE.search(text) is None and "NaN" not in text and "Infinity" not in text:
        return raw
    return clean_json(raw)


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

    def __post_init__(self) -> None:
        """Make every post storable and sendable as it is built, whichever source built it.

        Construction is the one place every post passes (sources, ``replace``, rows read back),
        so no source, present or future, can hand storage a value it cannot write: lone
        surrogates become U+FFFD in every text field and in raw's strings, counts are clamped to
        SQLite's INTEGER range, a rating outside 0-5 is dropped, ``created_at`` is made UTC.
        Each check is cheap (an O(1) ``isascii`` for most text), so rows read back pay little.
        """
        fixes = {
            "platform": _text(self.platform), "platform_id": _text(self.platform_id),
            "text": _text(self.text), "source": _text(self.source), "kind": _text(self.kind),
            "url": _text(self.url), "author": _text(self.author),
            "lang": _text(self.lang), "brand": _text(self.brand),
            "thread": _text(self.thread),
            "author_followers": clean_count(self.author_followers),
            "rating": clean_rating(self.rating) if self.rating is not None else None,
            "raw": clean_raw(self.raw),
        }
        also = tuple(_text(b) for b in self.also_brands)
        fixes["also_brands"] = self.also_brands if also == self.also_brands else also
        if isinstance(self.created_at, datetime):
            fixes["created_at"] = as_utc(self.created_at)
        for name, value in fixes.items():
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)

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

    def __post_init__(self) -> None:
        """Storable text: a file name or a quoted value may hold lone surrogates too."""
        object.__setattr__(self, "where", _text(self.where))
        object.__setattr__(self, "reason", _text(self.reason))


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


class Score(NamedTuple):
    """The classifier's verdict on one post, as stored.

    A named tuple, not a frozen dataclass: as immutable, and made in a quarter of the time (0.3
    instead of 1.2 µs), which the classify stage does for every post under the interpreter
    lock its other threads share (bench/README.md, "The interpreter lock's hand-overs")."""

    sentiment: str
    p_negative: float
    p_neutral: float
    p_positive: float
    urgency: float
    model: str
    model_version: str
    # the language the post was scored as (the platform's tag or the detected one; "und" when
    # too short to tell) and whether a configured model covers it: False means the figures
    # above are a model's guess about a language it was not trained on, and a person must read
    # the post (the queue, rules' ``unsupported_language`` and trends treat it apart)
    lang: str | None = None
    language_supported: bool = True
    # the model that actually scored the post when ``model`` routes by language (the default
    # model and ``classifier.models``): its name and version, e.g. "multilingual-e5 3f2a…"
    scored_by: str | None = None


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
class Report:
    """An alert about many posts at once — a spike, a digest, alerts held over quiet hours, an
    incident — as the stage that decided it wrote it, before it is routed anywhere.

    ``facts`` are label/value pairs every sink shows as fields; ``example_post_ids`` the posts a
    human should read first; ``numbers`` machine-readable figures (webhook JSON, the API);
    ``chart_png`` is optional. Storage keeps it once with its alerts (:mod:`storage.reports`).
    """

    kind: str  # "spike" | "digest" | "held" | "incident" | "incident_update"
    name: str  # the spike detector / digest / rule that made it
    title: str
    window_start: datetime
    window_end: datetime
    brand: str | None = None
    source: str | None = None
    summary: str = ""
    facts: Sequence[tuple[str, str]] = ()
    terms: Sequence[str] = ()
    example_post_ids: Sequence[int] = ()
    numbers: dict[str, Any] = field(default_factory=dict)
    chart_png: bytes | None = None
    priority: str = "normal"
    # what identifies the report when its window does not (an incident's first message stays
    # the same report whatever reports join later); default: kind, name, brand, source, window
    key: str | None = None
    # the report this one updates (an incident's first message): sinks thread or comment
    parent_id: str | None = None

    @property
    def id(self) -> str:
        """Deterministic, so a stage that runs again for the same window adds nothing."""
        key = self.key or "\x1f".join([self.kind, self.name, self.brand or "",
                                       self.source or "", to_iso(self.window_start),
                                       to_iso(self.window_end)])
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class ReportMessage(Report):
    """A :class:`Report` on its way to one destination: what dispatch hands a sink.

    Built by storage from a ``reports`` row and its outbox alert; the report's fields are the
    stored ones, ``examples`` the example posts loaded with their scores.
    """

    alert_id: str
    destination: str
    report_id: str = ""  # the stored report's id (its ``key`` is not kept): :attr:`id`
    examples: tuple[tuple[Post, Score], ...] = ()
    attempt: int = 1
    # an update to an earlier report at the same destination (an incident's new reports): the
    # remote id of that first message (Slack ts, ticket id or key, issue number, Message-ID),
    # so sinks that can thread or comment add to it instead of starting a new conversation
    reply_to: str | None = None
    parent_alert_id: str | None = None  # the outbox id of that first message

    @property
    def id(self) -> str:
        return self.report_id or super().id

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.name,)
