"""Mastodon: source (the collector), items (statuses → posts)."""

from listener.sources.mastodon.source import MastodonSource

__all__ = ["MastodonSource"]
