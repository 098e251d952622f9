"""Jira Cloud destination: one issue per alert (REST API v3, ``POST /rest/api/3/issue``).

Untrusted post text stays inert: :mod:`alerts.render.jira` builds the description as Atlassian
Document Format from plain text nodes only (never wiki markup) and cuts it below Jira's limits.
A report (spike, digest, alerts held over quiet hours) becomes one issue too, rendered the same
way by :mod:`alerts.render.jira` and also labelled ``listener-<kind>``.

Exactly-once effect: Jira has no idempotency key, so every issue carries the label
``listener-<alert_id>``. When dispatch retries (``message.attempt > 1``) after an ambiguous
failure (a timeout after Jira may already have created the issue), the sink first searches
``labels = "listener-<alert_id>"`` and returns the existing key instead of creating a second
issue. Jira's search is eventually consistent (recent writes can take a few seconds to be
indexed), so an issue created just before a *very* quick retry can still be missed; dispatch's
backoff (30 s and more by default) keeps that window small. The first attempt never searches, so a
crash between Jira's answer and dispatch recording it (dispatch's own window) can still duplicate.

Incident updates. A report of kind ``incident_update`` whose ``reply_to`` is the key this sink
returned for the incident's first message becomes a comment on that issue (``POST
/rest/api/3/issue/{key}/comment`` with an ADF ``body`` of plain text nodes, rendered by
:func:`alerts.render.jira.report_comment`: title, how many reports are new, the queue
link, the posts), ending with a paragraph that names the update's alert label. Comments have no
labels and no idempotency key, so ``attempt > 1`` first reads the issue's newest comments
(``GET .../comment?orderBy=-created&maxResults=100``: read from the database, no search lag)
and returns the key without posting when one ends with that paragraph. What remains: more than
100 comments on the issue between the lost answer and the retry. An issue that is gone (404)
gets the update as an issue of its own (with the label and search above); so does an update
whose first message never reached Jira (``reply_to`` None).

Retries belong to dispatch: one request per step, no redirects followed, timeouts always set.
The API token (and the Basic credentials derived from it) never appear in an exception, a log
line or a repr; they are registered with :mod:`listener.core.log` for redaction as well.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field, field_validator

from alerts.render.jira import (
    alert_label,
    description,
    has_comment_marker,
    report_comment,
    report_description,
    report_summary,
    summary,
)
from alerts.render.text import EXAMPLE_TEXT_MAX, kind_tag
from alerts.sinks._http import (
    answer_error,
    basic_credentials,
    https_base_url,
    json_object,
    register_secrets,
    request,
    sink_client,
)
from alerts.sinks.base import SinkConfig, error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, RateLimited
from listener.core.log import redact
from listener.core.models import AlertMessage, Clock, ReportMessage, parse_iso, utcnow

log = logging.getLogger(__name__)

DEFAULT_WAIT = 60.0  # seconds, when a 429 says nothing about when to come back
CREATE_PATH = "/rest/api/3/issue"
SEARCH_PATH = "/rest/api/3/search/jql"  # "enhanced search"; the old /search is gone (410)
COMMENT_PATH = "/rest/api/3/issue/{key}/comment"  # Add comment (POST), Get comments (GET)
COMMENTS_LOOKED_AT = 100  # newest comments a retry reads (Jira's maximum page)
_ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}-[1-9][0-9]{0,18}$")
_MAYBE_CREATED = "; Jira may have created the issue, so the retry searches for it first"
_MAYBE_COMMENTED = ("; Jira may have added the comment, so the retry looks among the issue's "
                    "comments first")
_LABEL = re.compile(r"^\S{1,255}$")

# What to tell the operator, by Jira's field name in a 400 ``errors`` object.
FIELD_ADVICE: dict[str, str] = {
    "project": "check project_key: the project must exist and the account must be able to "
    "create issues in it",
    "issuetype": "check issue_type: it must be an issue type of this project (e.g. Task, Bug)",
    "priority": "the project's create screen has no Priority field (or the name is unknown): "
    "set priority_field: false or fix priority_map",
    "labels": "check labels: Jira labels must not contain spaces",
    "description": "listener rendered a description Jira refuses; please report it with the "
    "alert id",
    "summary": "listener rendered a summary Jira refuses; please report it with the alert id",
    "comment": "listener rendered a comment Jira refuses; please report it with the alert id",
}
STATUS_ADVICE: dict[int, str] = {
    401: "Jira refused the credentials: check email and api_token (an API token from "
    "id.atlassian.com, not the password)",
    403: "the account may not do this: it needs Browse projects and Create issues in the project "
    "(Add comments for incident updates; or Jira asks for a CAPTCHA after failed logins: sign in "
    "once in a browser)",
    404: "not found: check base_url (https://yoursite.atlassian.net) and that the account can "
    "see the project",
}


class JiraSinkConfig(SinkConfig):
    """A Jira Cloud site, a project, and how alerts become issues there."""

    # The config loader prints pydantic's messages; never let them echo the token back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["jira"] = Field("jira", description="always 'jira'")
    base_url: str = Field(description="the Jira Cloud site, e.g. https://yourcompany.atlassian.net")
    email: str = Field(min_length=3, description="the Atlassian account email the token belongs to")
    api_token: str = Field(
        repr=False,
        description='Atlassian API token (a secret: give it as {"$env": NAME})',
    )
    project_key: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,254}$", description="key of the project, e.g. SUP"
    )
    issue_type: str = Field("Task", min_length=1, description="issue type name, e.g. Task or Bug")
    labels: list[str] = Field(
        default_factory=list,
        description="extra labels for every issue (no spaces); 'listener' and "
        "'listener-<alert id>' are always added",
    )
    priority_field: bool = Field(
        True, description="set the Priority field (false where the create screen hides it)"
    )
    priority_map: dict[str, str] = Field(
        default_factory=lambda: {"high": "High", "normal": "Medium", "low": "Low"},
        description="alert priority (high/normal/low) → Jira priority name",
    )
    excerpt_chars: int = Field(
        2000, ge=100, le=20_000, description="at most this many characters of the post text"
    )
    timeout: float = Field(10, gt=0, le=120, description="seconds to wait to connect and answer")
    min_interval: float = Field(
        0.5, ge=0, description="seconds between two issues (Jira rate-limits bursts)"
    )

    @field_validator("base_url")
    @classmethod
    def _https_site(cls, url: str) -> str:
        """The Basic credentials travel with every request: never in clear over a network."""
        return https_base_url(url, "base_url")

    @field_validator("labels")
    @classmethod
    def _labels_without_spaces(cls, labels: list[str]) -> list[str]:
        bad = [label for label in labels if not _LABEL.match(label)]
        if bad:
            raise ValueError(f"Jira labels must be 1-255 characters without spaces: {bad}")
        return labels


# -- the sink ---------------------------------------------------------------------------------


class JiraSink:
    """Creates one Jira issue per alert and returns its key (e.g. ``SUP-123``)."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[JiraSinkConfig]] = JiraSinkConfig
    type: ClassVar[str] = "jira"

    def __init__(self, config: JiraSinkConfig, *, clock: Clock = utcnow) -> None:
        """``clock`` turns X-RateLimit-Reset (a time, not a delay) into seconds to wait."""
        self.name = config.name
        self.min_interval = config.min_interval
        self._config = config
        self._clock = clock
        self._host = urlsplit(config.base_url).hostname or "?"
        self._secrets = (config.api_token, basic_credentials(config.email, config.api_token))
        register_secrets(self._secrets)
        self._client = sink_client(
            f"Jira destination '{config.name}'", base_url=config.base_url,
            auth=httpx.BasicAuth(config.email, config.api_token), timeout=config.timeout,
            headers={"Accept": "application/json", "User-Agent": "social-listener/0.1"},
        )

    def __repr__(self) -> str:
        project = self._config.project_key
        return f"JiraSink(name={self.name!r}, host={self._host!r}, project={project!r})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Create the issue (after looking for it on a retry); returns the issue key. An
        incident update with ``reply_to`` becomes a comment on that issue instead."""
        if isinstance(message, ReportMessage) and message.reply_to is not None:
            commented = self._comment(message, message.reply_to)
            if commented is not None:
                return commented
        if message.attempt > 1:
            existing = self.find_existing(message)
            if existing is not None:
                log.info("%s: alert %s already has issue %s (an earlier try landed); not "
                         "creating another", self.name, message.alert_id, existing)
                return existing
        response = self._call("POST", CREATE_PATH, message, "create issue",
                              json={"fields": self.fields(message)})
        key = json_object(response).get("key")
        if response.status_code == 201 and isinstance(key, str) and key:
            return key
        raise self._error(response, message, "create issue")

    def _comment(self, message: ReportMessage, key: str) -> str | None:
        """Add the update to issue ``key`` once; its key, or None when it must be an issue of
        its own (no such issue, or ``reply_to`` is not an issue key)."""
        if not _ISSUE_KEY.match(key):
            log.warning("%s: reply_to %r is not an issue key; the update becomes an issue of its "
                        "own", self._where(message), key[:40])
            return None
        if message.attempt > 1:
            found = self.find_comment(message, key)
            if found is None:
                return None
            if found:
                log.info("%s: issue %s already has this update (an earlier try landed); not "
                         "adding it again", self._where(message), key)
                return key
        limit = min(self._config.excerpt_chars, EXAMPLE_TEXT_MAX)  # per example post
        response = self._call("POST", COMMENT_PATH.format(key=key), message, "add comment",
                              json={"body": report_comment(message, limit)})
        if response.status_code == 201:
            return key
        if response.status_code == 404:
            log.warning("%s: issue %s is gone or hidden (HTTP 404); the update becomes an issue "
                        "of its own", self._where(message), key)
            return None
        raise self._error(response, message, "add comment")

    def find_comment(self, message: ReportMessage, key: str) -> bool | None:
        """Whether one of the issue's newest comments is this update; None: no such issue."""
        response = self._call("GET", COMMENT_PATH.format(key=key), message, "get comments",
                              params={"orderBy": "-created", "maxResults": COMMENTS_LOOKED_AT})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, message, "get comments")
        comments = json_object(response).get("comments")
        return any(isinstance(c, dict) and has_comment_marker(c.get("body"), message.alert_id)
                   for c in (comments if isinstance(comments, list) else []))

    def find_existing(self, message: AlertMessage | ReportMessage) -> str | None:
        """The key of an issue carrying this alert's label, or None (enhanced JQL search)."""
        label = alert_label(message.alert_id)  # [A-Za-z0-9_-] only: nothing to escape in JQL
        body = {"jql": f'labels = "{label}"', "fields": ["labels"], "maxResults": 5}
        response = self._call("POST", SEARCH_PATH, message, "search", json=body)
        if response.status_code != 200:
            raise self._error(response, message, "search")
        issues = json_object(response).get("issues")
        for issue in issues if isinstance(issues, list) else []:
            key = issue.get("key") if isinstance(issue, dict) else None
            labels = (issue.get("fields") or {}).get("labels") if isinstance(issue, dict) else None
            if isinstance(key, str) and key and (labels is None or label in labels):
                return key
        return None

    def fields(self, message: AlertMessage | ReportMessage) -> dict[str, Any]:
        """The ``fields`` object of the create request; a report is also labelled by kind."""
        config = self._config
        labels = [*config.labels, "listener", alert_label(message.alert_id)]
        if isinstance(message, ReportMessage):
            limit = min(config.excerpt_chars, EXAMPLE_TEXT_MAX)  # per example post
            text, doc = report_summary(message), report_description(message, limit)
            labels.append(kind_tag(message))
        else:
            text, doc = summary(message), description(message, config.excerpt_chars)
        fields: dict[str, Any] = {
            "project": {"key": config.project_key},
            "issuetype": {"name": config.issue_type},
            "summary": text,
            "description": doc,
            "labels": list(dict.fromkeys(labels)),
        }
        if config.priority_field:
            mapping = config.priority_map
            name = mapping.get(message.priority.lower()) or mapping.get("normal")
            if name:
                fields["priority"] = {"name": name}
        return fields

    def close(self) -> None:
        self._client.close()

    def check(self) -> str:
        """``listener doctor``: search the project for our label; nothing is created.

        Proves the site, the credentials and that the account can see the project (an unknown
        or hidden project_key makes Jira answer 400).
        """
        where, key = f"Jira destination '{self.name}'", self._config.project_key
        body = {"jql": f'project = "{key}" AND labels = "listener"', "fields": ["labels"],
                "maxResults": 1}
        response = request(self._client, "POST", SEARCH_PATH, where=where, service="Jira",
                           action="search", timeout=self._config.timeout, json=body)
        if response.status_code != 200:
            snippet = self._redact(_jira_errors(json_object(response))[0] or response.text)[:300]
            advice = STATUS_ADVICE.get(response.status_code, FIELD_ADVICE["project"])
            raise answer_error(where, response.status_code, "search", snippet, retryable=False,
                               advice=advice)
        return f"signed in to {self._host}; project {key} can be searched"

    # -- HTTP and error mapping --------------------------------------------------------------

    def _where(self, message: AlertMessage | ReportMessage) -> str:
        return f"Jira destination '{self.name}' (alert {message.alert_id})"

    def _call(
        self, method: str, path: str, message: AlertMessage | ReportMessage, action: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request (see :func:`alerts.sinks._http.request`), then the rate-limit check."""
        maybe_done = "" if method != "POST" else _MAYBE_CREATED if path == CREATE_PATH else \
            _MAYBE_COMMENTED if path.endswith("/comment") else ""
        response = request(
            self._client, method, path, where=self._where(message), service="Jira",
            action=action, timeout=self._config.timeout, maybe_done=maybe_done, **kwargs,
        )
        if response.status_code in (429, 503):
            self._raise_if_rate_limited(response, message)
        return response

    def _raise_if_rate_limited(
        self, response: httpx.Response, message: AlertMessage | ReportMessage
    ) -> None:
        """429 always; 503 only when Jira says when to come back (Retry-After/X-RateLimit-Reset)."""
        headers = response.headers
        retry_after, reset = headers.get("Retry-After"), headers.get("X-RateLimit-Reset")
        if response.status_code == 503 and retry_after is None and reset is None:
            return
        wait = retry_after_seconds(retry_after, default=-1.0)
        if wait < 0 and reset:
            try:
                wait = max(0.0, (parse_iso(reset) - self._clock()).total_seconds())
            except ValueError:
                wait = -1.0
        wait = DEFAULT_WAIT if wait < 0 else wait
        reason = headers.get("RateLimit-Reason", "")[:60]
        raise RateLimited(
            f"{self._where(message)}: rate-limited by Jira (HTTP {response.status_code}"
            f"{' ' + reason if reason else ''}); retry in {wait:g}s",
            wait,
        )

    def _error(
        self, response: httpx.Response, message: AlertMessage | ReportMessage, action: str
    ) -> DeliveryError:
        """Map an unwanted answer: Jira's own error text plus what the operator should do."""
        status = response.status_code
        body = json_object(response)
        detail, fields = _jira_errors(body)
        snippet = self._redact(detail or " ".join(response.text.split()))[:300]
        retryable = error_for_status(status, snippet).retryable
        if 200 <= status < 300:
            advice = "unexpected answer: is base_url the Jira Cloud site?"
        elif 300 <= status < 400:
            advice = "Jira redirects: configure the final https site URL as base_url"
        elif status == 400:
            known = [FIELD_ADVICE[f] for f in fields if f in FIELD_ADVICE]
            advice = "; ".join(known) or "Jira refused the request; check the project settings"
        elif status in STATUS_ADVICE:
            advice = STATUS_ADVICE[status]
        elif retryable:
            advice = "Jira or the network failed; dispatch will retry"
        else:
            advice = "Jira refused the request"
        return answer_error(self._where(message), status, action, snippet,
                            retryable=retryable, advice=advice)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)


def _jira_errors(body: dict[str, Any]) -> tuple[str, list[str]]:
    """``{"errorMessages": [...], "errors": {"field": "message"}}`` → text and field names."""
    listed = body.get("errorMessages")
    messages = [str(m) for m in listed if m] if isinstance(listed, list) else []
    found = body.get("errors")
    errors: dict[str, Any] = found if isinstance(found, dict) else {}
    messages += [f"{field}: {text}" for field, text in errors.items()]
    return "; ".join(" ".join(m.split()) for m in messages), [str(f) for f in errors]
