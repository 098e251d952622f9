"""Zendesk destination: one ticket per alert through the Ticketing API (httpx, API token).

A report (spike, digest, alerts held over quiet hours) is one ticket too: subject = its title,
a body with its facts, terms and example posts, tags ``listener``, ``listener-<kind>``, its name
and ``brand-<brand>``, the API user as requester (a report has no single author), and the same
idempotency as a post alert.

Exactly-once effect. Every create carries ``Idempotency-Key: <alert id>`` and the ticket's
``external_id`` is the alert id. Zendesk keeps a key for two hours: a replay with the same body
answers the first ticket and ``x-idempotency-lookup: hit`` (logged), a first use ``miss``; the
same key with another body answers 400 ``IdempotentRequestError``. The body is rendered from the
alert only (no clock, no attempt number), so a retry replays it byte for byte. As a second safety
net, ``attempt > 1`` first lists ``GET /api/v2/tickets.json?external_id=<alert id>`` (a database
filter, not the eventually consistent search index) and returns the ticket found; an
``IdempotentRequestError`` (the body changed: config edited, another rule joined the alert) also
looks there before giving up. What remains: a crash after Zendesk created the ticket but before
dispatch recorded it, followed by more than two hours down (the next try is attempt 1 again, so
only the expired key would protect it); or an agent deleting the ticket before a retry.

Incident updates. A report of kind ``incident_update`` whose ``reply_to`` is the ticket id this
sink returned for the incident's first message becomes a comment on that ticket (``PUT
/api/v2/tickets/{id}.json`` with ``{"ticket": {"comment": {"body", "public"}}}``; internal note
or public as ``public`` says): the title, how many reports are new, the queue link and the
posts, then a line of its own ``listener-update:<alert id>``. Zendesk keeps no idempotency key
for updates, so ``attempt > 1`` first lists the ticket's newest comments (``GET
/api/v2/tickets/{id}/comments.json?sort_order=desc``, 100 of them) and returns the ticket id
without posting when one carries that line. What remains: more than 100 comments added to the
ticket between the lost answer and the retry. A ticket that is gone (404) gets the update as a
ticket of its own, and so does a closed one (Zendesk refuses to update it: 422), as a follow-up
(``via_followup_source_id``); that new ticket has the key, ``external_id`` and lookup above.
With ``reply_to`` None (the first message was never delivered) the update is a ticket of its
own from the start.

Requester. Zendesk creates a new requester only from a name *and* an email (an email-less
requester is refused), and reuses any existing user with that email. Social posts carry no email,
so ``requester: none`` (default) leaves the API user as requester and names the author in the
body; ``requester: author`` sends ``{name: "<author> (<platform>)", email: <synthetic>}`` where the
address is ``<platform>-<author slug>-<hash>@<requester_email_domain>``, stable per author, under a
domain no real user has (default ``listener.invalid``, RFC 2606: never delivered), so a hostile
author name can never select an existing customer, and notifications go nowhere.

Priority: low/normal/high map to Zendesk's low/normal/high; a post alert's high with urgency at
or above ``urgent_urgency`` (default 0.9) becomes ``urgent``.

Untrusted text (Zendesk renders comment bodies as Markdown and expands ``{{...}}`` placeholders)
is made inert by :mod:`alerts.render.zendesk`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.render.common import strip_controls
from alerts.render.text import EXAMPLE_TEXT_MAX
from alerts.render.zendesk import (
    has_comment_marker,
    report_body,
    report_subject,
    report_tags,
    requester_for,
    ticket_body,
    ticket_priority,
    ticket_subject,
    update_comment,
    zendesk_tag,
)
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
from listener.core.models import AlertMessage, ReportMessage

log = logging.getLogger(__name__)

TICKETS = "/api/v2/tickets.json"
TICKET = "/api/v2/tickets/{id}.json"  # Update Ticket (PUT): how a comment is added
COMMENTS = "/api/v2/tickets/{id}/comments.json"  # List Comments
COMMENTS_LOOKED_AT = 100  # newest comments a retry looks through (one page, Zendesk's maximum)
_TICKET_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_CREATE_AGAIN = ("; the retry replays the same idempotency key, so Zendesk will not create a "
                 "second ticket")
_COMMENT_AGAIN = ("; Zendesk may have added the comment, so the retry looks among the ticket's "
                  "comments first")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_ADVICE = {
    401: "the email or API token is wrong or revoked; check both environment variables",
    403: "the API user may not create tickets (or token access is off in Admin Center)",
    404: "no such Zendesk account or endpoint; check subdomain / base_url",
    422: "Zendesk refused a field; fix the named field (group_id, custom_fields, tags)",
}


class CustomField(BaseModel):
    """One ticket field value, as Zendesk takes it: ``{id: 360001234567, value: "social"}``."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="the ticket field's id (Admin Center → Objects → Ticket fields)")
    value: str | int | float | bool | list[str] | None = Field(description="the value to set")


class ZendeskSinkConfig(SinkConfig):
    """Creates a ticket per alert in one Zendesk account."""

    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["zendesk"] = Field("zendesk", description="always 'zendesk'")
    subdomain: str | None = Field(None, description="account subdomain: acme for acme.zendesk.com")
    base_url: str | None = Field(None, description="instead of subdomain: https://host (tests)")
    email: str = Field(repr=False, description='agent email of the API user ({"$env": NAME})')
    api_token: str = Field(repr=False, description='API token, a secret ({"$env": NAME})')
    public: bool = Field(False, description="make the alert comment public (default: internal)")
    requester: Literal["none", "author"] = Field(
        "none", description="none: the API user requests; author: a synthetic end user per author"
    )
    requester_email_domain: str = Field(
        "listener.invalid", description="domain of the synthetic requester emails (undeliverable)"
    )
    tags: list[str] = Field(default_factory=list, description="extra tags ('listener' is added)")
    group_id: int | None = Field(None, description="assign tickets to this group id")
    custom_fields: list[CustomField] = Field(
        default_factory=list, description="ticket field values: [{id: ..., value: ...}]"
    )
    urgent_urgency: float | None = Field(
        0.9, ge=0, le=1, description="priority high + urgency at/above this → urgent; null: never"
    )
    max_text_chars: int = Field(4000, ge=100, le=20000, description="post text cut to this")
    timeout: float = Field(15, gt=0, le=120, description="seconds to connect and to answer")
    min_interval: float = Field(0.5, ge=0, description="seconds between two creates (rate limit)")

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value):
            raise ValueError("subdomain is the first label of acme.zendesk.com, e.g. 'acme'")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        """The token travels with every request: https only, except 127.0.0.1 for tests; the
        account's root (the API paths start at ``/api/v2``)."""
        if value is None:
            return None
        parts = urlsplit(https_base_url(value, "base_url"))
        if parts.path.strip("/"):
            raise ValueError("base_url must be scheme://host[:port] with no path or user")
        return f"{parts.scheme.lower()}://{parts.netloc}"

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        bad = [t for t in tags if zendesk_tag(t) != t]
        if bad:
            raise ValueError(f"tags may hold only a-z, 0-9, _ and -: {bad}")
        return tags

    @field_validator("requester_email_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("requester_email_domain must be a domain such as listener.invalid")
        return value

    @model_validator(mode="after")
    def _one_address(self) -> ZendeskSinkConfig:
        if (self.subdomain is None) == (self.base_url is None):
            raise ValueError("give exactly one of subdomain and base_url")
        return self

    @property
    def url(self) -> str:
        return self.base_url or f"https://{self.subdomain}.zendesk.com"


# -- the request body -------------------------------------------------------------------


def ticket_payload(
    msg: AlertMessage | ReportMessage, config: ZendeskSinkConfig, followup_of: int | None = None
) -> dict[str, Any]:
    """The Create Ticket body; a function of the message and config only (idempotent replays).

    ``followup_of``: a closed ticket this one follows up (an incident update whose first ticket
    was closed), as ``via_followup_source_id``.
    """
    requester: dict[str, str] | None = None
    if isinstance(msg, ReportMessage):  # no single author: the API user is the requester
        limit = min(config.max_text_chars, EXAMPLE_TEXT_MAX)  # per example post
        subject, body, tags = report_subject(msg), report_body(msg, limit), report_tags(msg)
        priority = ticket_priority(msg.priority)
    else:
        subject, body = ticket_subject(msg), ticket_body(msg, config.max_text_chars)
        tags = [zendesk_tag(rule) for rule in msg.rules]
        very_urgent = config.urgent_urgency is not None and \
            msg.score.urgency >= config.urgent_urgency
        priority = ticket_priority(msg.priority, urgent=very_urgent)
        if config.requester == "author":
            requester = requester_for(msg, config.requester_email_domain)
    ticket: dict[str, Any] = {
        "subject": subject,
        "comment": {"body": body, "public": config.public},
        "external_id": msg.alert_id,
        "priority": priority,
        "tags": [t for t in dict.fromkeys([*config.tags, "listener", *tags]) if t],
    }
    if requester is not None:
        ticket["requester"] = requester
    if followup_of is not None:
        ticket["via_followup_source_id"] = followup_of
    if config.group_id is not None:
        ticket["group_id"] = config.group_id
    if config.custom_fields:
        ticket["custom_fields"] = [f.model_dump() for f in config.custom_fields]
    return {"ticket": ticket}


def comment_payload(msg: ReportMessage, config: ZendeskSinkConfig) -> dict[str, Any]:
    """The Update Ticket body that adds an incident update as a comment (nothing else changes)."""
    limit = min(config.max_text_chars, EXAMPLE_TEXT_MAX)  # per example post
    return {"ticket": {"comment": {"body": update_comment(msg, limit), "public": config.public}}}


# -- the sink -------------------------------------------------------------------------------


class ZendeskSink:
    """Creates one ticket per alert; returns the ticket id."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[ZendeskSinkConfig]] = ZendeskSinkConfig
    type: ClassVar[str] = "zendesk"

    def __init__(self, config: ZendeskSinkConfig) -> None:
        self.name = config.name
        self.min_interval = config.min_interval
        self._config = config
        self._host = urlsplit(config.url).hostname or "?"
        user = f"{config.email}/token"
        register_secrets((config.api_token, basic_credentials(user, config.api_token),
                          config.email))
        self._client = sink_client(
            f"Zendesk destination '{config.name}'", base_url=config.url,
            auth=httpx.BasicAuth(user, config.api_token), timeout=config.timeout,
            headers={"Accept": "application/json", "User-Agent": "social-listener"},
        )

    def __repr__(self) -> str:
        return f"ZendeskSink(name={self.name!r}, host={self._host!r})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Find the ticket of an earlier attempt, or create it with the idempotency key; an
        incident update with ``reply_to`` becomes a comment on that ticket instead."""
        followup_of: int | None = None
        if isinstance(message, ReportMessage) and message.reply_to is not None:
            commented, followup_of = self._comment(message, message.reply_to)
            if commented is not None:
                return commented
        if message.attempt > 1:
            existing = self._find(message)
            if existing is not None:
                log.info("%s: ticket %s for alert %s already exists (earlier attempt)",
                         self.name, existing, message.alert_id)
                return existing
        payload = ticket_payload(message, self._config, followup_of)
        response = self._request(message, "POST", TICKETS, "create ticket", json=payload,
                                 headers={"Idempotency-Key": message.alert_id})
        if response.status_code in (200, 201):
            return self._created(response, message)
        if response.status_code == 400 and _error_code(response) == "IdempotentRequestError":
            existing = self._find(message)
            if existing is not None:
                return existing
        raise self._answer_error(response, message)

    def close(self) -> None:
        self._client.close()

    def check(self) -> str:
        """``listener doctor``: list tickets by an external id no alert has; nothing is created."""
        where = f"Zendesk destination '{self.name}'"
        response = request(self._client, "GET", TICKETS, where=where, service="Zendesk",
                           action="list tickets", timeout=self._config.timeout,
                           params={"external_id": "listener-doctor"})
        if response.status_code != 200:
            advice = _ADVICE.get(response.status_code, "check url / subdomain, email and api_token")
            raise answer_error(where, response.status_code, "list tickets",
                               _error_detail(response), retryable=False, advice=advice)
        return f"signed in to {self._host}; tickets can be listed"

    def _comment(self, message: ReportMessage, ticket: str) -> tuple[str | None, int | None]:
        """Add the update to ``ticket`` (once); ``(ticket id, None)`` when it is there.

        ``(None, None)``: the ticket is gone or ``reply_to`` is not a ticket id, and
        ``(None, id)``: the ticket is closed (a follow-up ticket carries the update then).
        """
        where = self._where(message)
        if not _TICKET_ID.match(ticket):
            log.warning("%s: reply_to %r is not a ticket id; the update becomes a ticket of its "
                        "own", where, ticket[:40])
            return None, None
        if message.attempt > 1:
            found = self._find_comment(message, ticket)
            if found is None:  # the ticket is gone: the update's own ticket may exist
                return None, None
            if found:
                log.info("%s: ticket %s already has this update (earlier attempt); not adding "
                         "it again", where, ticket)
                return ticket, None
        response = self._request(message, "PUT", TICKET.format(id=ticket), "add comment",
                                 json=comment_payload(message, self._config),
                                 maybe_done=_COMMENT_AGAIN)
        if response.status_code == 200:
            log.info("%s: added the update to ticket %s", where, ticket)
            return ticket, None
        if response.status_code == 404:
            log.warning("%s: ticket %s is gone (HTTP 404); the update becomes a ticket of its "
                        "own", where, ticket)
            return None, None
        if response.status_code == 422 and _is_closed(response):
            log.warning("%s: ticket %s is closed; the update becomes a follow-up ticket",
                        where, ticket)
            return None, int(ticket)
        raise self._answer_error(response, message)

    def _find_comment(self, message: ReportMessage, ticket: str) -> bool | None:
        """Whether one of the ticket's newest comments is this update; None: no such ticket."""
        response = self._request(message, "GET", COMMENTS.format(id=ticket), "list comments",
                                 params={"sort_order": "desc", "page[size]": COMMENTS_LOOKED_AT})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._answer_error(response, message)
        comments = json_object(response).get("comments")
        return any(has_comment_marker(c, message.alert_id)
                   for c in (comments if isinstance(comments, list) else []))

    def _created(self, response: httpx.Response, message: AlertMessage | ReportMessage) -> str:
        lookup = response.headers.get("x-idempotency-lookup", "")
        ticket_id = json_object(response).get("ticket", {}).get("id")
        if not isinstance(ticket_id, int):
            raise DeliveryError(f"{self._where(message)}: HTTP {response.status_code} without a "
                                "ticket id; is base_url a Zendesk account?", retryable=True,
                                status=response.status_code, body_snippet=response.text[:300])
        if lookup == "hit":
            log.info("%s: idempotency hit: ticket %s was created by an earlier attempt of %s",
                     self.name, ticket_id, message.alert_id)
        else:
            log.info("%s: created ticket %s for alert %s (idempotency lookup: %s)",
                     self.name, ticket_id, message.alert_id, lookup or "not reported")
        return str(ticket_id)

    def _find(self, message: AlertMessage | ReportMessage) -> str | None:
        """The oldest ticket whose external_id is the alert id (List Tickets filter)."""
        response = self._request(message, "GET", TICKETS, "list tickets",
                                 params={"external_id": message.alert_id})
        if response.status_code != 200:
            raise self._answer_error(response, message)
        tickets = json_object(response).get("tickets") or []
        ids = [t["id"] for t in tickets if isinstance(t, dict) and isinstance(t.get("id"), int)
               and t.get("external_id") == message.alert_id]
        return str(min(ids)) if ids else None

    def _request(
        self, message: AlertMessage | ReportMessage, method: str, path: str, action: str,
        maybe_done: str = _CREATE_AGAIN, **kw: Any,
    ) -> httpx.Response:
        """One request (see :func:`alerts.sinks._http.request`); ``maybe_done`` tells what a
        retry does after a timeout."""
        return request(self._client, method, path, where=self._where(message),
                       service="Zendesk", action=action, timeout=self._config.timeout,
                       maybe_done=maybe_done, **kw)

    def _answer_error(
        self, response: httpx.Response, message: AlertMessage | ReportMessage
    ) -> Exception:
        """Map Zendesk's answer: 429 waits, 4xx parks with advice, 5xx retries."""
        status, where = response.status_code, self._where(message)
        retry_after = response.headers.get("Retry-After")
        if status == 429 or (status == 503 and retry_after is not None):
            wait = retry_after_seconds(retry_after)
            return RateLimited(f"{where}: rate-limited by Zendesk (HTTP {status}); "
                               f"retry in {wait:g}s", wait)
        code, detail = _error_code(response), _error_detail(response)
        error = error_for_status(status, detail, permanent=frozenset({400, 401, 403, 404, 422}))
        if 300 <= status < 400:
            advice = "Zendesk redirected (not followed); check subdomain / base_url"
        elif code == "IdempotentRequestError":
            advice = ("the ticket changed between attempts and no ticket carries this alert id; "
                      "`listener alerts retry` it after two hours (the key expires)")
        elif error.retryable:
            advice = "Zendesk or the network failed; dispatch will retry"
        else:
            advice = _ADVICE.get(status, "Zendesk refused the ticket; see the detail")
        label = " ".join(p for p in (f"HTTP {status}", code, detail and f"({detail})") if p)
        return DeliveryError(f"{where}: {label}: {advice}", status=status,
                             body_snippet=detail, retryable=error.retryable)

    def _where(self, message: AlertMessage | ReportMessage) -> str:
        return f"Zendesk destination '{self.name}' (alert {message.alert_id})"


def _is_closed(response: httpx.Response) -> bool:
    """Zendesk's 422 for an update of a closed ticket: a ``status`` detail ("Status: closed
    prevents ticket update")."""
    details = json_object(response).get("details")
    return isinstance(details, dict) and "closed" in str(details.get("status", "")).lower()


def _error_code(response: httpx.Response) -> str:
    """Zendesk's ``error`` name (RecordInvalid, IdempotentRequestError…), when it is a word."""
    error = json_object(response).get("error")
    if isinstance(error, dict):
        error = error.get("title")
    return error if isinstance(error, str) and re.fullmatch(r"[A-Za-z_ ']{1,60}", error) else ""


def _error_detail(response: httpx.Response) -> str:
    """The field errors of a 422 (``priority: is not valid``), else the description."""
    body = json_object(response)
    details = body.get("details")
    if isinstance(details, dict):
        parts = []
        for field, errors in details.items():
            for item in errors if isinstance(errors, list) else [errors]:
                text = item.get("description", "") if isinstance(item, dict) else str(item)
                parts.append(f"{field}: {text}")
        return strip_controls("; ".join(parts))[:300]
    description = body.get("description")
    text = description if isinstance(description, str) else response.text
    return strip_controls(" ".join(text.split()))[:200]
