"""GitHub Issues destination: one issue per alert (REST ``POST /repos/{owner}/{repo}/issues``).

Works with github.com (``https://api.github.com``) and GitHub Enterprise Server
(``https://HOST/api/v3``). The token (classic with ``repo``/``public_repo``, or fine-grained with
Issues: read and write) is sent as ``Authorization: Bearer``, with the documented
``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28`` headers.
:mod:`alerts.render.github` renders the body so that post text cannot mention, link, embed or
inject anything. ``send`` returns the issue *number* as a string (e.g. ``"42"``): the stable id
inside the configured repository (owner/repo come from the config), shorter than ``html_url``.
A report (spike, digest, alerts held over quiet hours) becomes one issue too, rendered by
:mod:`alerts.render.github` and labelled ``listener`` and ``listener-<kind>``.

Exactly-once effect: GitHub has no idempotency key, so each body ends with the hidden marker
``<!-- listener:<alert_id> -->``. When dispatch retries (``message.attempt > 1``) after an
ambiguous failure, the sink looks for that marker before creating again: first in the repo's 30
most recently created issues (``GET /repos/{o}/{r}/issues?state=all&sort=created``; read from the
database, so an issue created moments ago is there), then with ``GET /search/issues`` (the search
index lags behind writes, but reaches older issues). A duplicate remains possible only when more
than 30 issues were created in the repo between the lost answer and the retry *and* search has
not indexed ours yet, or after a crash between GitHub's answer and dispatch recording it.

Incident updates. A report of kind ``incident_update`` whose ``reply_to`` is the issue number this
sink returned for the incident's first message becomes a comment on that issue (``POST
/repos/{o}/{r}/issues/{number}/comments``, rendered by
:func:`alerts.render.github.report_comment`: title, how many reports are new, the queue
link, the posts fenced), ending with the same hidden marker ``<!-- listener:<alert_id> -->``
(the update's own alert id). ``attempt > 1`` first reads the issue's comments (``GET
.../comments?per_page=100``: the first page, then from the last page, named by the ``Link``
header, backwards; :data:`COMMENT_PAGES` pages at most, from the database, no search lag) and
returns the number without posting when one ends with the marker. What remains: an issue with
more than ~1,000 comments between the first and the newest pages. An issue that is gone or was
transferred (301, 404, 410) gets the update as an issue of its own, with the marker and lookup
above; so does an update whose first message never reached GitHub (``reply_to`` None).

Rate limits (docs "Rate limits for the REST API"): 403/429 with ``x-ratelimit-remaining: 0`` wait
until ``x-ratelimit-reset`` (epoch seconds); a secondary limit (403/429 with ``retry-after``, or
whose message says so) waits ``retry-after`` or at least a minute. Content creation is limited to
80 requests a minute, hence ``min_interval`` 1 s by default. Any other 401/403/404/410/422 cannot
be fixed by retrying and parks the alert with advice; 5xx, timeouts and network errors are
retried by dispatch. The token never appears in an exception, a log line or a repr.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ConfigDict, Field, field_validator

from alerts.render.github import (
    body,
    has_marker,
    marker_key,
    report_body,
    report_comment,
    report_issue_title,
    title,
)
from alerts.render.text import EXAMPLE_TEXT_MAX, kind_tag
from alerts.sinks._http import (
    answer_error,
    https_or_local,
    json_object,
    request,
    sink_client,
    split_url,
)
from alerts.sinks.base import SinkConfig, error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, RateLimited
from listener.core.log import redact, register_secret
from listener.core.models import AlertMessage, Clock, ReportMessage, utcnow

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
RECENT = 30  # most recent issues checked for our marker before searching
COMMENT_PAGES = 10  # pages of 100 comments a retry reads at most, looking for an update
_ISSUE_NUMBER = re.compile(r"^[1-9][0-9]{0,9}$")
# An issue that cannot take the update's comment: transferred (301), gone (404), deleted (410,
# "This issue was deleted"). The update becomes an issue of its own; if the cause is the whole
# repository (moved, disabled issues), creating it fails with the advice for that.
_GONE = frozenset({301, 404, 410})
_LAST_PAGE = re.compile(r"<([^>]*)>\s*;\s*rel=\"?last\"?")
_MAYBE_CREATED = "; GitHub may have created the issue, so the retry looks for it first"
_MAYBE_COMMENTED = ("; GitHub may have added the comment, so the retry looks among the issue's "
                    "comments first")
SECONDARY_WAIT = 60.0  # "otherwise, wait for at least one minute before retrying"
_NAME = r"^[A-Za-z0-9_.-]{1,100}$"  # and not "." or "..": they would change the URL path
_LABEL_MAX = 50  # GitHub refuses longer label names (422)

STATUS_ADVICE: dict[int, str] = {
    401: "GitHub refused the token (Bad credentials): it is wrong, expired or revoked; "
    "create a new one and update its environment variable",
    403: "the token may not create issues here: it needs Issues read/write (fine-grained) or "
    "the repo scope (classic), and SSO authorization where the organization requires it",
    404: "repository not found, or the token cannot see it: check owner, repo and base_url, "
    "and the token's repository access",
    410: "issues are disabled in this repository: enable them in the repository settings or "
    "choose another repo",
    422: "GitHub refused the issue (validation): check labels (at most 50 characters each)",
}


class GitHubSinkConfig(SinkConfig):
    """A repository whose issues receive the alerts."""

    # The config loader prints pydantic's messages; never let them echo the token back.
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["github"] = Field("github", description="always 'github'")
    base_url: str = Field(
        "https://api.github.com",
        description="API root: https://api.github.com, or https://HOST/api/v3 for GitHub "
        "Enterprise Server",
    )
    token: str = Field(
        repr=False,
        description='token with Issues write access (a secret: give it as {"$env": NAME})',
    )
    owner: str = Field(pattern=_NAME, description="user or organization that owns the repo")
    repo: str = Field(pattern=_NAME, description="repository name")
    labels: list[str] = Field(
        default_factory=list,
        description="labels for every issue, at most 50 characters each (GitHub keeps them only "
        "when the token may push to the repo)",
    )
    excerpt_chars: int = Field(
        4000, ge=100, le=50_000, description="at most this many characters of the post text"
    )
    timeout: float = Field(10, gt=0, le=120, description="seconds to wait to connect and answer")
    min_interval: float = Field(
        1.0, ge=0, description="seconds between two issues (GitHub: at most 80 creations/minute)"
    )

    @field_validator("base_url")
    @classmethod
    def _https_api(cls, url: str) -> str:
        """The token travels with every request: never in clear over a network."""
        url = url.strip().rstrip("/")
        parts = split_url(url, "base_url")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in url) or not parts.hostname \
                or parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("base_url must be a plain URL such as https://api.github.com")
        return https_or_local(url, "base_url", parts)

    @field_validator("owner", "repo")
    @classmethod
    def _not_a_dot_segment(cls, name: str) -> str:
        if name in (".", ".."):
            raise ValueError("must be a repository owner or name, not '.' or '..'")
        return name

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: list[str]) -> list[str]:
        bad = [label for label in labels if not 0 < len(label.strip()) <= _LABEL_MAX]
        if bad:
            raise ValueError(f"GitHub label names must be 1-{_LABEL_MAX} characters: {bad}")
        return labels


class GitHubSink:
    """Creates one GitHub issue per alert and returns its number (as a string)."""

    # Config first: below ``type`` the name means this ClassVar, not the builtin.
    Config: ClassVar[type[GitHubSinkConfig]] = GitHubSinkConfig
    type: ClassVar[str] = "github"

    def __init__(self, config: GitHubSinkConfig, *, clock: Clock = utcnow) -> None:
        """``clock`` turns x-ratelimit-reset (an epoch time) into seconds to wait."""
        self.name = config.name
        self.min_interval = config.min_interval
        self._config = config
        self._clock = clock
        self._host = urlsplit(config.base_url).hostname or "?"
        self._repo_path = f"/repos/{config.owner}/{config.repo}"  # both validated: [\w.-]
        register_secret(config.token)  # the handler-level filter of listener.core.log redacts it
        self._client = sink_client(
            f"GitHub destination '{config.name}'", base_url=config.base_url,
            timeout=config.timeout,
            headers={
                "Authorization": f"Bearer {config.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "social-listener/0.1",
            },
        )

    def __repr__(self) -> str:
        repo = f"{self._config.owner}/{self._config.repo}"
        return f"GitHubSink(name={self.name!r}, host={self._host!r}, repo={repo!r})"

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Create the issue (after looking for it on a retry); returns its number. An incident
        update with ``reply_to`` becomes a comment on that issue instead."""
        if isinstance(message, ReportMessage) and message.reply_to is not None:
            commented = self._comment(message, message.reply_to)
            if commented is not None:
                return commented
        if message.attempt > 1:
            existing = self.find_existing(message)
            if existing is not None:
                log.info("%s: alert %s already has issue #%s (an earlier try landed); not "
                         "creating another", self.name, message.alert_id, existing)
                return existing
        payload = self.issue(message)
        response = self._call("POST", f"{self._repo_path}/issues", message, "create issue",
                              json=payload)
        number = json_object(response).get("number")
        if response.status_code == 201 and isinstance(number, int):
            return str(number)
        raise self._error(response, message, "create issue")

    def issue(self, message: AlertMessage | ReportMessage) -> dict[str, Any]:
        """The create request's body; a report is also labelled ``listener`` + its kind."""
        labels = list(self._config.labels)
        payload: dict[str, Any]
        if isinstance(message, ReportMessage):
            limit = min(self._config.excerpt_chars, EXAMPLE_TEXT_MAX)  # per example post
            payload = {"title": report_issue_title(message), "body": report_body(message, limit)}
            labels += ["listener", kind_tag(message)]
        else:
            payload = {"title": title(message),
                       "body": body(message, self._config.excerpt_chars)}
        if labels:
            payload["labels"] = list(dict.fromkeys(labels))
        return payload

    def _comment(self, message: ReportMessage, number: str) -> str | None:
        """Add the update to issue ``number`` once; its number, or None when it must be an
        issue of its own (no such issue, or ``reply_to`` is not an issue number)."""
        if not _ISSUE_NUMBER.match(number):
            log.warning("%s: reply_to %r is not an issue number; the update becomes an issue of "
                        "its own", self._where(message), number[:40])
            return None
        if message.attempt > 1:
            found = self.find_comment(message, number)
            if found is None:
                return None
            if found:
                log.info("%s: issue #%s already has this update (an earlier try landed); not "
                         "adding it again", self._where(message), number)
                return number
        limit = min(self._config.excerpt_chars, EXAMPLE_TEXT_MAX)  # per example post
        response = self._call("POST", f"{self._repo_path}/issues/{number}/comments", message,
                              "add comment", json={"body": report_comment(message, limit)})
        if response.status_code == 201 and isinstance(json_object(response).get("id"), int):
            return number
        if response.status_code in _GONE:
            log.warning("%s: issue #%s is gone, deleted or transferred (HTTP %d); the update "
                        "becomes an issue of its own", self._where(message), number,
                        response.status_code)
            return None
        raise self._error(response, message, "add comment")

    def find_comment(self, message: ReportMessage, number: str) -> bool | None:
        """Whether a comment of issue ``number`` ends with this update's marker; None: no such
        issue. Reads the first page, then the last ones backwards (the newest comments)."""
        path = f"{self._repo_path}/issues/{number}/comments"
        pages: list[int] = [1]
        while pages:
            page = pages.pop(0)
            response = self._call("GET", path, message, "list comments",
                                  params={"per_page": 100, "page": page})
            if response.status_code in _GONE:
                return None
            if response.status_code != 200:
                raise self._error(response, message, "list comments")
            if any(isinstance(c, dict) and has_marker(c.get("body"), message.alert_id)
                   for c in _list(response)):
                return True
            if page == 1:
                last = _last_page(response.headers.get("link"))
                pages = list(range(last, max(1, last - COMMENT_PAGES + 1), -1))
        return False

    def find_existing(self, message: AlertMessage | ReportMessage) -> str | None:
        """The number of an issue whose body ends with this alert's marker, or None."""
        recent = self._call(
            "GET", f"{self._repo_path}/issues", message, "list recent issues",
            params={"state": "all", "sort": "created", "direction": "desc", "per_page": RECENT},
        )
        if recent.status_code != 200:
            raise self._error(recent, message, "list recent issues")
        found = _match(_list(recent), message.alert_id)
        if found is not None:
            return found
        repo = f"{self._config.owner}/{self._config.repo}"
        query = f'repo:{repo} is:issue in:body "{marker_key(message.alert_id)}"'
        searched = self._call("GET", "/search/issues", message, "search issues",
                              params={"q": query, "per_page": 10})
        if searched.status_code != 200:
            raise self._error(searched, message, "search issues")
        items = json_object(searched).get("items")
        return _match(items if isinstance(items, list) else [], message.alert_id)

    def close(self) -> None:
        self._client.close()

    def check(self) -> str:
        """``listener doctor``: list one issue of the repository; nothing is created.

        Proves the token and that it can see the repository; whether it may also *create*
        issues shows only on the first alert (GitHub has no dry run).
        """
        where = f"GitHub destination '{self.name}'"
        response = request(self._client, "GET", f"{self._repo_path}/issues", where=where,
                           service="GitHub", action="list issues", timeout=self._config.timeout,
                           params={"state": "all", "per_page": 1})
        if response.status_code != 200:
            snippet = redact(_github_errors(json_object(response)) or response.text)[:300]
            advice = STATUS_ADVICE.get(response.status_code, "check base_url, owner and repo")
            raise answer_error(where, response.status_code, "list issues", snippet,
                               retryable=False, advice=advice)
        return f"token accepted; {self._config.owner}/{self._config.repo} is visible"

    # -- HTTP and error mapping --------------------------------------------------------------

    def _where(self, message: AlertMessage | ReportMessage) -> str:
        return f"GitHub destination '{self.name}' (alert {message.alert_id})"

    def _call(
        self, method: str, path: str, message: AlertMessage | ReportMessage, action: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request (see :func:`alerts.sinks._http.request`), then the rate-limit check."""
        maybe_done = "" if method != "POST" else \
            _MAYBE_COMMENTED if path.endswith("/comments") else _MAYBE_CREATED
        response = request(
            self._client, method, path, where=self._where(message), service="GitHub",
            action=action, timeout=self._config.timeout, maybe_done=maybe_done, **kwargs,
        )
        if response.status_code in (403, 429):
            self._raise_if_rate_limited(response, message)
        return response

    def _raise_if_rate_limited(
        self, response: httpx.Response, message: AlertMessage | ReportMessage
    ) -> None:
        """Primary (remaining 0 → reset), secondary (retry-after, else ≥ 60 s); else return."""
        headers = response.headers
        text = str(json_object(response).get("message") or "")
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            wait, kind = retry_after_seconds(retry_after, SECONDARY_WAIT), "secondary"
        elif headers.get("x-ratelimit-remaining") == "0":
            kind = "primary"
            try:
                wait = max(0.0, float(headers.get("x-ratelimit-reset", "")) -
                           self._clock().timestamp())
            except ValueError:
                wait = SECONDARY_WAIT
        elif response.status_code == 429 or "rate limit" in text.lower():
            wait, kind = SECONDARY_WAIT, "secondary"
        else:
            return  # a 403 about permissions, not speed
        raise RateLimited(
            f"{self._where(message)}: {kind} rate limit (HTTP {response.status_code}); "
            f"retry in {wait:.0f}s",
            wait,
        )

    def _error(
        self, response: httpx.Response, message: AlertMessage | ReportMessage, action: str
    ) -> DeliveryError:
        """Map an unwanted answer: GitHub's message and errors, plus what to do about it."""
        status = response.status_code
        snippet = redact(_github_errors(json_object(response)) or " ".join(response.text.split()))
        snippet = snippet.replace(self._config.token, "***")[:300]
        retryable = error_for_status(status, snippet).retryable
        if 200 <= status < 300:
            advice = "unexpected answer: is base_url the GitHub API root?"
        elif 300 <= status < 400:
            advice = "GitHub redirects (repository renamed or moved?): update owner/repo/base_url"
        elif status in STATUS_ADVICE:
            retryable, advice = False, STATUS_ADVICE[status]
        elif retryable:
            advice = "GitHub or the network failed; dispatch will retry"
        else:
            advice = "GitHub refused the request"
        return answer_error(self._where(message), status, action, snippet,
                            retryable=retryable, advice=advice)


def _match(items: list[Any], alert_id: str) -> str | None:
    """The number of the first issue (not pull request) whose body ends with our marker."""
    for item in items:
        if not isinstance(item, dict) or "pull_request" in item:
            continue
        number = item.get("number")
        if isinstance(number, int) and has_marker(item.get("body"), alert_id):
            return str(number)
    return None


def _last_page(link: str | None) -> int:
    """The page number of ``rel="last"`` in a ``Link`` header (1 when there is none); only the
    number is used, the URL itself is never followed."""
    match = _LAST_PAGE.search(link or "")
    if match is None:
        return 1
    try:
        page = parse_qs(urlsplit(match.group(1)).query).get("page", ["1"])[0]
        return max(1, min(int(page), 10_000))
    except ValueError:
        return 1


def _list(response: httpx.Response) -> list[Any]:
    try:
        data = response.json()
    except ValueError:
        return []
    return data if isinstance(data, list) else []


_SPACES = re.compile(r"\s+")


def _github_errors(data: dict[str, Any]) -> str:
    """``{"message": "Validation Failed", "errors": [{"field": "labels", "code": ...}]}``."""
    parts = [str(data.get("message") or "")]
    errors = data.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            bits = [str(error.get(k)) for k in ("resource", "field", "code", "message")
                    if error.get(k)]
            parts.append(" ".join(bits))
        elif error:
            parts.append(str(error))
    return _SPACES.sub(" ", "; ".join(p for p in parts if p)).strip()
