"""Reddit: source (the collector), items (submissions and comments → posts), http (the PRAW session: no hidden retries, rate budget)."""

from listener.sources.reddit.source import RedditSource

__all__ = ["RedditSource"]
