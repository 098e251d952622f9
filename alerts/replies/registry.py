"""Reply writers by platform: one module and one line each (as sources and sinks are)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alerts.replies.base import AccountConfig, ReplyWriter
from listener.core.registry import load_plugin

WRITERS: dict[str, str] = {
    "mastodon": "alerts.replies.mastodon:MastodonWriter",
    "bluesky": "alerts.replies.bluesky:BlueskyWriter",
    "reddit": "alerts.replies.reddit:RedditWriter",
    "x": "alerts.replies.x:XWriter",
    "googleplay": "alerts.replies.googleplay:GooglePlayWriter",
    "appstore": "alerts.replies.appstore:AppStoreWriter",
}


def writer_class(platform: str) -> Any:
    """The writer class for a platform (imported only when an account names it)."""
    return load_plugin(WRITERS, "reply account", platform, "listener.replies")


def build_writers(accounts: Sequence[AccountConfig], timeout: float) -> dict[str, ReplyWriter]:
    """One writer per configured account, by the account's name (no network yet)."""
    return {a.name: writer_class(a.type)(a, timeout) for a in accounts}
