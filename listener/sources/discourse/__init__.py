"""Discourse forums: source (config, the collector and its two walks), api (the guarded GET,
errors, rate limits), items (post records → posts), cursor (the cursor's entries), search (brand
queries as search strings, hits as topics), categories (the category tree as ids)."""

from listener.sources.discourse.source import DiscourseSource, DiscourseSourceConfig

__all__ = ["DiscourseSource", "DiscourseSourceConfig"]
