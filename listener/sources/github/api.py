"""The GitHub REST and GraphQL APIs over httpx, through the network guard, and their errors.

Every request carries ``Authorization: Bearer <token>``, ``Accept: application/vnd.github+json``
and ``X-GitHub-Api-Version: 2022-11-28``. Redirects are followed (GitHub answers 301 for a
renamed repository and 307 for a moved resource), each hop through the guard, and httpx drops
the token on a hop to another origin.

Errors, as docs.github.com describes them:

- **primary rate limit**: 403 or 429 with ``x-ratelimit-remaining: 0``: wait until
  ``x-ratelimit-reset`` (epoch seconds);
- **secondary rate limit**: 403 or 429 with ``retry-after``: wait that long; without it (the
  message says "secondary rate limit") wait at least a minute; any other 429 too;
- GraphQL's ``RATE_LIMITED`` error (HTTP 200) like the primary limit;
- 401: the token was refused; 403 otherwise: the token lacks access (scopes, SAML SSO);
- 404/410: the repository does not exist, is gone or the token cannot see it (named);
- 422: GitHub refused the search query (its message, and what to change);
- 5xx, a body that is not the JSON documented, a timeout, a reset: the poll fails and the next
  one retries.

Each raises :class:`RateLimited` (only this source pauses) or :class:`SourceError`; none sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from listener.core.errors import RateLimited, SourceError
from listener.core.httpguard import Policy, guarded_client
from listener.core.models import Clock
from listener.sources.http import (
    DEFAULT_WAIT,
    USER_AGENT,
    raise_for_status,
    retry_after,
    unanswered,
)

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
SECONDARY_WAIT = DEFAULT_WAIT
"""Seconds to wait on a secondary rate limit that names no retry-after ("at least one minute")."""

_DISCUSSION_FIELDS = """
      id number title body createdAt url locked
      author { login ... on User { followers { totalCount } } }
      category { name }
      repository { nameWithOwner }
"""
REPO_DISCUSSIONS = """
query($owner: String!, $name: String!, $first: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    discussions(first: $first, after: $after, orderBy: {field: CREATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {FIELDS}
    }
  }
}
""".replace("FIELDS", _DISCUSSION_FIELDS)
SEARCH_DISCUSSIONS = """
query($q: String!, $first: Int!, $after: String) {
  search(query: $q, type: DISCUSSION, first: $first, after: $after) {
    discussionCount
    pageInfo { hasNextPage endCursor }
    nodes { ... on Discussion {FIELDS} }
  }
}
""".replace("FIELDS", _DISCUSSION_FIELDS)


def graphql_url(base_url: str) -> str:
    """Where GraphQL is: ``https://api.github.com/graphql``; on GitHub Enterprise Server, whose
    REST root is ``https://HOST/api/v3``, ``https://HOST/api/graphql``."""
    base = base_url.rstrip("/")
    if base.endswith("/api/v3"):
        return base[: -len("v3")] + "graphql"
    return base + "/graphql"


def rate_limit_wait(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds GitHub asks us to wait, or None when the answer is no rate limit by its headers:
    ``retry-after`` first, then the primary limit's reset when nothing is left."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after" in lower:
        return retry_after({"retry-after": lower["retry-after"]}, now)
    if lower.get("x-ratelimit-remaining", "").strip() == "0" and "x-ratelimit-reset" in lower:
        return retry_after({"x-ratelimit-reset": lower["x-ratelimit-reset"]}, now)
    return None


class GitHubApi:
    """One source's connection to GitHub: ``get`` (REST, JSON) and ``graphql``."""

    def __init__(self, source: str, base_url: str, token: str, timeout: float, policy: Policy,
                 clock: Clock) -> None:
        self.source, self.base_url, self.clock = source, base_url.rstrip("/"), clock
        self.graphql_url = graphql_url(self.base_url)
        self.timeout = timeout
        self._client = guarded_client(
            policy, base_url=self.base_url, timeout=timeout, follow_redirects=True,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, params: Mapping[str, Any], what: str, repo: str | None = None
            ) -> tuple[Any, httpx.Headers]:
        """The JSON answer of a GET and its headers; raises on anything else."""
        response = self._send("GET", path, what, params=dict(params))
        self._check(response, what, repo)
        return self._json(response, what), response.headers

    def graphql(self, query: str, variables: Mapping[str, Any], what: str,
                repo: str | None = None) -> dict[str, Any]:
        """``data`` of a GraphQL answer; its ``errors`` raise (``RATE_LIMITED`` pauses)."""
        response = self._send("POST", self.graphql_url, what,
                              json={"query": query, "variables": dict(variables)})
        self._check(response, what, repo)
        body = self._json(response, what)
        if not isinstance(body, dict):
            raise SourceError(f"source {self.source}: GitHub GraphQL ({what}): the answer is not "
                              "a JSON object; is base_url a GitHub API?")
        errors = body.get("errors")
        if errors:
            self._graphql_errors(errors, response.headers, what, repo)
        data = body.get("data")
        if not isinstance(data, dict):
            raise SourceError(f"source {self.source}: GitHub GraphQL ({what}): no 'data' in the "
                              "answer; the next poll retries")
        return data

    # -- the wire ------------------------------------------------------------------------------

    def _send(self, method: str, url: str, what: str, **options: Any) -> httpx.Response:
        try:
            return self._client.request(method, url, **options)
        except httpx.TooManyRedirects as exc:
            raise SourceError(f"source {self.source}: GitHub ({what}): too many redirects; "
                              "check base_url") from exc
        except httpx.HTTPError as exc:
            raise unanswered(f"source {self.source}", f"GitHub ({what})", self.base_url, exc,
                             self.timeout) from None

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise SourceError(
                f"source {self.source}: GitHub ({what}) answered something that is not JSON: "
                f"{response.text[:80]!r}; the next poll retries") from exc

    def _check(self, response: httpx.Response, what: str, repo: str | None) -> None:
        """Map an unsuccessful answer to RateLimited or SourceError; 2xx returns quietly."""
        status = response.status_code
        if 200 <= status < 300:
            return
        now = self.clock()
        message = _message(response)
        prefix = f"source {self.source}: GitHub ({what})"
        if status in (403, 429):
            wait = rate_limit_wait(response.headers, now)
            limited = wait is not None or status == 429 or "rate limit" in message.lower()
            if limited:
                primary = response.headers.get("x-ratelimit-remaining", "").strip() == "0"
                which = "primary" if primary and "secondary" not in message.lower() \
                    else "secondary"
                raise RateLimited(f"{prefix}: {which} rate limit (HTTP {status}): {message}",
                                  SECONDARY_WAIT if wait is None else wait)
            raise SourceError(f"{prefix}: HTTP 403: access denied: {message}; check that the "
                              "token may read this (scopes or fine-grained permissions: issues, "
                              "pull requests, discussions: read; SAML SSO authorised for the "
                              "organisation)")
        if status == 401:
            raise SourceError(f"{prefix}: HTTP 401: the token was refused ({message}); check "
                              "the token in this source's environment variable, and that it "
                              "has not expired")
        if status in (404, 410) and repo is not None:
            gone = "is gone (HTTP 410)" if status == 410 else "was not found (HTTP 404)"
            raise SourceError(f"{prefix}: repository {repo} {gone}, or the token cannot see "
                              "it; check `repos` and the token's access (issues or discussions "
                              "may also be disabled there)")
        if status == 422:
            raise SourceError(f"{prefix}: HTTP 422: GitHub refused the request: {message}; "
                              "simplify the brand's query (plain words and \"phrases\", each "
                              "search at most 256 characters)")
        raise_for_status(self.source, status, response.headers, message, now)
        raise SourceError(f"{prefix}: unexpected HTTP {status}: {message}")  # 1xx, 3xx

    def _graphql_errors(self, errors: Any, headers: httpx.Headers, what: str,
                        repo: str | None) -> None:
        items = errors if isinstance(errors, list) else [errors]
        kinds = {e.get("type") for e in items if isinstance(e, dict)}
        text = "; ".join(str(e.get("message") if isinstance(e, dict) else e)
                         for e in items)[:300]
        prefix = f"source {self.source}: GitHub GraphQL ({what})"
        if "RATE_LIMITED" in kinds:
            wait = rate_limit_wait(headers, self.clock())
            raise RateLimited(f"{prefix}: rate limit: {text}",
                              SECONDARY_WAIT if wait is None else wait)
        if "NOT_FOUND" in kinds and repo is not None:
            raise SourceError(f"{prefix}: repository {repo} was not found, or the token cannot "
                              f"see it ({text}); check `repos` and the token's access")
        raise SourceError(f"{prefix}: {text}; the next poll retries")


def _message(response: httpx.Response) -> str:
    """GitHub's ``message`` (and validation ``errors``) of an error answer, else its text."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    if not isinstance(body, dict):
        return " ".join(response.text.split())[:200]
    message = str(body.get("message") or "")
    details = body.get("errors")
    if isinstance(details, list):
        extra = "; ".join(str(d.get("message") or d.get("code") if isinstance(d, dict) else d)
                          for d in details)
        message = f"{message} ({extra})" if extra else message
    return " ".join(message.split())[:300]
