"""The forum's read-only JSON API: one guarded GET, its failures and Discourse's rate limits.

Kept apart from the walks so that the source reads as paging logic only: every request goes
through :meth:`DiscourseApi.get`, which turns a network failure, an error status, a 429 (with
the pause Discourse asks for) or an answer that is not a JSON object into the listener's errors.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from listener.core.errors import RateLimited, SourceError
from listener.core.httpguard import GuardSettings, guarded_client, source_policy
from listener.sources.base import SourceContext
from listener.sources.http import (
    DEFAULT_WAIT,
    USER_AGENT,
    raise_for_status,
    retry_after,
    unanswered,
)

SEARCH_PAGE_LIMIT = 10  # Discourse refuses search pages past 10 (SearchController::PAGE_LIMIT)
TOPIC_CHUNK = 20  # posts per /t/{id}/posts.json request (Discourse's topic chunk size)
SKIPPED_TOPIC = frozenset({403, 404, 410})


class DiscourseApi:
    """GETs on one forum through the guarded client, with the API key as headers."""

    def __init__(self, name: str, base_url: str, settings: GuardSettings, ctx: SourceContext,
                 *, api_key: str | None = None, api_username: str | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.ctx = ctx
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key and api_username:
            headers.update({"Api-Key": api_key, "Api-Username": api_username})
        self._client = guarded_client(
            source_policy(name, settings, [base_url]),
            base_url=base_url + "/", timeout=ctx.http_timeout, headers=headers,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, params: dict[str, Any], *, what: str,
            gone: frozenset[int] = frozenset()) -> Any:
        """One GET; any failure raises so the cursor stays. A status in ``gone`` is None."""
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise unanswered(f"source {self.name}", self.base_url, self.base_url, exc,
                             self.ctx.http_timeout) from None
        status = response.status_code
        if status in gone:
            return None
        if status == 429:
            raise RateLimited(f"source {self.name}: rate-limited by {self.base_url} "
                              f"(HTTP 429) reading {what}: {error_messages(response.text)}",
                              rate_limit_wait(response, self.ctx.clock()))
        raise_for_status(self.name, status, response.headers, response.text, self.ctx.clock())
        return self._json(response, what)

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The answer's JSON object; SourceError for anything else."""
        try:
            data = response.json()
        except ValueError as exc:
            raise SourceError(
                f"source {self.name}: {self.base_url} answered {what} with something that "
                f"is not JSON: {response.text[:100]!r}; is base_url a Discourse forum?"
            ) from exc
        if not isinstance(data, dict):
            raise SourceError(f"source {self.name}: unexpected answer for {what} (not a JSON "
                              "object); is base_url a Discourse forum?")
        return data


def error_messages(body: str) -> str:
    """The messages of a Discourse error body (``{"errors": [...]}``), else its start."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        return " ".join(str(e) for e in data["errors"])[:200]
    return " ".join(body.split())[:200]


def rate_limit_wait(response: Any, now: datetime) -> float:
    """Seconds to pause after a 429: Retry-After, else the body's ``extras.wait_seconds``."""
    if any(k.lower() == "retry-after" for k in response.headers):
        return retry_after(response.headers, now)
    try:
        data = response.json()
    except ValueError:
        data = None
    extras = data.get("extras") if isinstance(data, dict) else None
    seconds = extras.get("wait_seconds") if isinstance(extras, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return DEFAULT_WAIT
