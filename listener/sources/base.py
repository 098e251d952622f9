"""The Source interface: every collector turns a cursor into pages of normalised posts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from listener.core.models import Clock, Page, Sleep, utcnow
from listener.core.query import Brand


class SourceConfig(BaseModel):
    """Settings every source has; each source module subclasses it with its own keys."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="which collector (a name from listener/sources registry)")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique name of this source")
    interval: float = Field(300.0, gt=0, description="seconds between polls in daemon mode")
    brand: str | None = Field(
        None, description="brand recorded for posts that no brand query tags (e.g. an app's reviews)"
    )
    brands: list[str] | None = Field(
        None,
        description="brands (from the top-level `brands`) this source listens for; searching "
        "sources default to all of them, and every post collected is kept only if it matches "
        "one of their queries",
    )
    enabled: bool = Field(True, description="false keeps the source configured but never runs it")
    page_deadline: float = Field(
        120, gt=0, le=3600, description="seconds one page of a poll may take in total (all its "
        "requests, every byte): a server that drips or hangs fails the poll, the cursor stays, "
        "the next poll retries"
    )


@dataclass(frozen=True)
class SourceContext:
    """What a source gets from the runtime besides its config: injected time, paths, timeouts."""

    base_dir: Path = field(default_factory=Path.cwd)  # relative paths in config resolve here
    clock: Clock = utcnow
    sleep: Sleep = lambda _seconds: None  # noqa: E731 - sources must not block by default
    http_timeout: float = 30.0
    brands: tuple[Brand, ...] = ()  # what to search for; the collect stage filters by them too


class Source(Protocol):
    """A configured collector.

    ``fetch`` yields pages in order; the collect stage stores each page and the page's cursor in
    one transaction, so a crash or a bad page never moves the cursor past posts not yet stored.
    It raises :class:`listener.core.errors.SourceError` / ``RateLimited`` rather than returning partial
    garbage; malformed single records become ``Page.rejected`` entries instead.
    """

    type: ClassVar[str]
    Config: ClassVar[type[SourceConfig]]
    searches: ClassVar[bool]  # True: the platform is searched with the brands' queries
    name: str

    def fetch(self, cursor: Any) -> Iterator[Page]: ...

    # Optional: ``backfill(self, since: datetime) -> Iterator[Page]`` pulls history back to
    # ``since`` as far as the platform allows (its docstring says how far). Its pages carry
    # ``cursor=None``: history never moves the live cursor. ``listener backfill`` calls it.

    # Optional: ``check(self) -> str`` makes ONE cheap call that proves the credentials and
    # settings work (``listener doctor``), returns what it verified ("token accepted; …") and
    # raises ``SourceError`` / ``RateLimited`` with the reason otherwise. It must not store or
    # move anything. Sources without credentials may leave it out.
