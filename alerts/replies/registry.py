"""Reply writers by platform: one module and one line each (as sources and sinks are)."""

from __future__ import annotations

from typing import Any

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
