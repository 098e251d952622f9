"""YouTube: source (the collector), api (calls, quota, errors), transport (httplib2 over the
guarded httpx client), items (comments and videos → posts, query, cursor entries)."""

from listener.sources.youtube.source import YouTubeSource

__all__ = ["YouTubeSource"]
