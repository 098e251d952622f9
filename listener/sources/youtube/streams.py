"""What is polled (a channel's or a video's comments, a brand's video search) and the ids a
poll has collected already: shared by the comment walk, the search walk and the source."""

from __future__ import annotations

from dataclasses import dataclass

from listener.sources.cursor import SeenIds


@dataclass(frozen=True)
class Stream:
    """One thing polled: a channel's or a video's comments, or one brand's video search."""

    key: str
    kind: str  # "channel" | "video" | "search"
    ident: str  # channel id, video id or brand name
    query: str | None = None

    @property
    def label(self) -> str:
        return f"search {self.ident!r}" if self.kind == "search" else f"{self.kind} {self.ident}"

    @property
    def filters(self) -> dict[str, str]:
        return ({"allThreadsRelatedToChannelId": self.ident} if self.kind == "channel"
                else {"videoId": self.ident})


class Skip:
    """Ids collected already: the cursor's ``seen`` and what this poll handed out."""

    def __init__(self, seen: SeenIds, yielded: set[str]) -> None:
        self._seen, self._yielded = seen, yielded

    def __contains__(self, item: object) -> bool:
        return item in self._seen or item in self._yielded

    def add(self, item: str) -> None:
        self._yielded.add(item)
