"""Meta's platforms through the Graph API: graph (the shared client: errors, throttling),
walk (cursor and paging per post), facebook (Page post comments), instagram (media comments
and tags)."""

from listener.sources.meta.facebook import FacebookSource
from listener.sources.meta.instagram import InstagramSource

__all__ = ["FacebookSource", "InstagramSource"]
