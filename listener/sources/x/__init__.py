"""X (Twitter): source (the collector), transport (the API client: paging, rate limits, errors), cursor (the saved position)."""

from listener.sources.x.source import XSource

__all__ = ["XSource"]
