"""Bluesky: source (the collector), items (feed items → posts)."""

from listener.sources.bluesky.source import BlueskySource

__all__ = ["BlueskySource"]
