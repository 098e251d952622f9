"""YouTube: source (the collector: streams, cursor, backfill, doctor), config (its settings),
comments (the comment-thread walk), search (the video search walk), streams (what is polled),
api (calls, quota, errors), transport (httplib2 over the guarded httpx client), items
(comments and videos → posts, query, cursor entries)."""

from listener.sources.youtube.source import YouTubeSource, YouTubeSourceConfig

__all__ = ["YouTubeSource", "YouTubeSourceConfig"]
