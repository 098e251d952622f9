"""Collectors, one module per platform. Register a new one here: ``"type": "module:Class"``."""

from __future__ import annotations

from typing import Any

from listener.core.registry import load_plugin

# installed packages add their own sources here (README: "Writing a plugin")
ENTRY_POINTS = "listener.sources"
REGISTRY: dict[str, str] = {
    "file": "listener.sources.file:FileSource",
    "x": "listener.sources.x:XSource",
    "hackernews": "listener.sources.hackernews:HackerNewsSource",
    "rss": "listener.sources.rss:RssSource",
    "appstore": "listener.sources.appstore:AppStoreSource",
    "googleplay": "listener.sources.googleplay:GooglePlaySource",
    "reddit": "listener.sources.reddit:RedditSource",
    "mastodon": "listener.sources.mastodon:MastodonSource",
    "bluesky": "listener.sources.bluesky:BlueskySource",
    "youtube": "listener.sources.youtube:YouTubeSource",
    "trustpilot": "listener.sources.trustpilot:TrustpilotSource",
    "facebook": "listener.sources.meta:FacebookSource",
    "instagram": "listener.sources.meta:InstagramSource",
    "discourse": "listener.sources.discourse:DiscourseSource",
    "stackexchange": "listener.sources.stackexchange:StackExchangeSource",
    "github": "listener.sources.github:GitHubSource",
}


def source_class(type_name: str) -> Any:
    """The Source class for a config ``type``; raises ConfigError listing valid types."""
    return load_plugin(REGISTRY, "source", type_name, ENTRY_POINTS)
