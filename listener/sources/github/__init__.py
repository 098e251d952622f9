"""GitHub: source (streams, cursor, the collector), api (REST and GraphQL over the guarded httpx
client, GitHub's errors and rate limits), items (issues, pull requests, comments, discussions →
posts)."""

from listener.sources.github.source import GitHubSource

__all__ = ["GitHubSource"]
