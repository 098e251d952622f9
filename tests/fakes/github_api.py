"""A fake GitHub REST API (issues and issue search) for tests: real HTTP on 127.0.0.1.

Tests point the real sink (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. It keeps the issues it created and answers the way docs.github.com describes:

- every request needs ``Authorization: Bearer <token>`` (or ``token <token>``), else
  ``401 {"message": "Bad credentials", ...}``; an unknown ``X-GitHub-Api-Version`` gets 400;
  every answer carries ``x-ratelimit-limit/-remaining/-used/-reset/-resource``;
- ``POST /repos/{owner}/{repo}/issues`` ("Create an issue"): ``201`` with the issue object
  (``number``, ``html_url``, ``title``, ``body``, ``labels`` …) and a ``Location`` header;
  ``404 Not Found`` for an unknown repository, ``410`` when issues are disabled, ``422
  Validation Failed`` with ``errors`` for a missing/long title, a body over 65,536 characters or
  a label name over 50 characters;
- ``GET /repos/{owner}/{repo}/issues`` ("List repository issues"): ``state``, ``sort``,
  ``direction``, ``per_page`` (default 30, max 100), ``page``; pull requests are listed too, with
  a ``pull_request`` key (:meth:`FakeGitHub.add_pull_request`);
- ``GET /search/issues`` ("Search issues and pull requests"): ``q`` with ``repo:``, ``is:issue``,
  ``is:pr``, ``in:body``/``in:title`` and words or "quoted phrases" (matched case-insensitively
  as substrings, a simplification of GitHub's tokenizer); answers ``{"total_count",
  "incomplete_results", "items"}``. The search index lags behind writes: with ``search_lag=n``
  a new issue is missed by the next ``n`` searches.
- ``POST /repos/{owner}/{repo}/issues/{issue_number}/comments`` ("Create an issue comment")
  with ``{"body"}``: ``201`` with the comment (``id``, ``node_id``, ``url``, ``html_url``,
  ``body``, ``user``, ``created_at``, ``issue_url`` …) and a ``Location`` header; ``404`` for an
  unknown issue or repository, ``410 {"message": "This issue was deleted"}`` for a deleted one
  (:meth:`FakeGitHub.delete_issue`), ``410`` too when issues are disabled, ``403 "Unable to
  create comment because issue is locked."`` for a locked one, ``422`` for a missing body or one
  over 65,536 characters. No idempotency key: a replayed POST adds a second comment.
- ``GET /repos/{owner}/{repo}/issues/{issue_number}/comments`` ("List issue comments"):
  ascending by id, ``since``, ``per_page`` (default 30, max 100) and ``page``, with a ``Link``
  header (``next``, ``last``, ``prev``, ``first``) when there is more than one page.

Scripting: :meth:`FakeGitHub.enqueue` queues a raw answer for the next request to ``path`` (any
if None); ``commit=True`` handles the request first (the issue *is* created) and replaces only
the answer, e.g. with a delay or :data:`HANG_UP`, so the client cannot know it landed.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import HANG_UP, Answer, PathScriptedFake, RecordedRequest, ScriptedResponse
from tests.fakes.base import PathScripted as Scripted

__all__ = ["DOCS", "HANG_UP", "VERSIONS", "FakeGitHub", "Scripted"]

VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
DOCS = "https://docs.github.com/rest"
_REPO_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/issues$")
_COMMENTS_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
_TERMS = re.compile(r'"([^"]*)"|(\S+)')


class FakeGitHub(PathScriptedFake):
    """A scriptable fake GitHub API; use as a context manager or call start()/stop()."""

    name = "fake GitHub"
    json_strings = True  # a str body is a JSON string: the REST API answers JSON only

    def __init__(
        self, *, token: str = "ghp_SECRETtoken0123456789", repos: tuple[str, ...] = ("acme/support",),
        issues_disabled: tuple[str, ...] = (), search_lag: int = 0,
    ) -> None:
        super().__init__()
        self.token, self.repos = token, {r.lower() for r in repos}
        self.issues_disabled = {r.lower() for r in issues_disabled}
        self.search_lag = search_lag
        self.issues: list[dict[str, Any]] = []  # issues and pull requests, oldest first
        self.comments: list[dict[str, Any]] = []  # issue comments, oldest first
        self._searches = 0

    def comments_on(self, number: int | str, repo: str = "acme/support") -> list[dict[str, Any]]:
        """The comments issue ``number`` of ``repo`` shows, oldest first."""
        with self._lock:
            return [_public(c) for c in self.comments
                    if c["_repo"] == repo.lower() and c["_number"] == int(number)]

    def add_comment(self, number: int | str, body: str, repo: str = "acme/support") -> None:
        """A comment someone else wrote."""
        with self._lock:
            issue = self._issue(repo.lower(), int(number))
            assert issue is not None, f"no issue {repo}#{number}"
            self._new_comment(issue, body)

    def delete_issue(self, number: int | str, repo: str = "acme/support") -> None:
        """An admin deleted the issue: it answers 410 "This issue was deleted" from then on."""
        with self._lock:
            issue = self._issue(repo.lower(), int(number))
            assert issue is not None, f"no issue {repo}#{number}"
            issue["_deleted"] = True

    def lock_issue(self, number: int | str, repo: str = "acme/support") -> None:
        with self._lock:
            issue = self._issue(repo.lower(), int(number))
            assert issue is not None, f"no issue {repo}#{number}"
            issue["locked"] = True

    def add_issue(self, repo: str, title: str, body: str) -> dict[str, Any]:
        """An issue someone else opened (it counts among the most recent ones)."""
        with self._lock:
            return self._new(repo.lower(), {"title": title, "body": body})

    def add_pull_request(self, repo: str, title: str, body: str) -> dict[str, Any]:
        with self._lock:
            self._new(repo.lower(), {"title": title, "body": body})
            item = self.issues[-1]
            item["pull_request"] = {"url": item["url"].replace("/issues/", "/pulls/")}
            return _public(item)

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = ...  # unparsable: "Problems parsing JSON"
        request = RecordedRequest(method, path, raw_query, headers, body)
        query = request.query

        def real() -> ScriptedResponse:
            status, answer, extra = self._route(method, path, query, headers, data)
            limits = _rate_headers("search" if path == "/search/issues" else "core")
            return ScriptedResponse(status, answer, {**limits, **extra})

        with self._lock:
            self._record(request)
            return self._scripted_or(path, real)

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], data: Any
    ) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, _error("Bad credentials", 401), {}
        version = headers.get("x-github-api-version")
        if version is not None and version not in VERSIONS:
            return 400, _error(f"Unsupported API version {version}", 400), {}
        if method == "GET" and path == "/search/issues":
            return self._search(query)
        comments = _COMMENTS_PATH.match(path)
        if comments is not None:
            return self._comments(method, path, comments, query, data)
        match = _REPO_PATH.match(path)
        repo = f"{match.group(1)}/{match.group(2)}".lower() if match else ""
        if not match or repo not in self.repos:
            return 404, _error("Not Found", 404), {}
        if method == "GET":
            return self._list(repo, query)
        if repo in self.issues_disabled:
            return 410, _error("Issues are disabled for this repo", 410), {}
        if data is ...:
            return 400, _error("Problems parsing JSON", 400), {}
        errors = _validate(data if isinstance(data, dict) else {})
        if errors:
            return 422, {**_error("Validation Failed", 422), "errors": errors}, {}
        issue = self._new(repo, data)
        return 201, issue, {"Location": issue["url"]}

    def _new(self, repo: str, data: dict[str, Any]) -> dict[str, Any]:
        number = 1 + sum(1 for i in self.issues if i["_repo"] == repo)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        issue = {
            "id": 1000 + len(self.issues), "node_id": f"I_kw{len(self.issues)}",
            "url": f"{self.base_url}/repos/{repo}/issues/{number}",
            "repository_url": f"{self.base_url}/repos/{repo}",
            "html_url": f"https://github.com/{repo}/issues/{number}", "number": number,
            "state": "open", "title": data.get("title"), "body": data.get("body"),
            "user": {"login": "listener-bot", "id": 1, "type": "User"},
            "labels": [{"id": 1, "name": n, "color": "ededed", "default": False}
                       for n in data.get("labels") or []],
            "assignees": [], "comments": 0, "locked": False, "author_association": "OWNER",
            "created_at": now, "updated_at": now, "closed_at": None,
            "_repo": repo, "_searchable_after": self._searches + self.search_lag,
        }
        self.issues.append(issue)
        return _public(issue)

    def _issue(self, repo: str, number: int) -> dict[str, Any] | None:
        return next((i for i in self.issues if i["_repo"] == repo and i["number"] == number),
                    None)

    def _comments(
        self, method: str, path: str, match: re.Match[str], query: dict[str, str], data: Any
    ) -> tuple[int, Any, dict[str, str]]:
        repo = f"{match.group(1)}/{match.group(2)}".lower()
        if repo not in self.repos:
            return 404, _error("Not Found", 404), {}
        if repo in self.issues_disabled:
            return 410, _error("Issues are disabled for this repo", 410), {}
        issue = self._issue(repo, int(match.group(3)))
        if issue is None:
            return 404, _error("Not Found", 404), {}
        if issue.get("_deleted"):
            return 410, _error("This issue was deleted", 410), {}
        if method == "GET":
            return self._list_comments(path, issue, query)
        if method != "POST":
            return 404, _error("Not Found", 404), {}
        if data is ...:
            return 400, _error("Problems parsing JSON", 400), {}
        if issue.get("locked"):
            return 403, _error("Unable to create comment because issue is locked.", 403), {}
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body:
            errors = [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]
            return 422, {**_error("Validation Failed", 422), "errors": errors}, {}
        if len(body) > 65_536:
            errors = [{"resource": "IssueComment", "field": "body", "code": "custom",
                       "message": "body is too long (maximum is 65536 characters)"}]
            return 422, {**_error("Validation Failed", 422), "errors": errors}, {}
        comment = self._new_comment(issue, body)
        return 201, comment, {"Location": comment["url"]}

    def _new_comment(self, issue: dict[str, Any], body: str) -> dict[str, Any]:
        comment_id = 5000 + len(self.comments)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        comment = {
            "id": comment_id, "node_id": f"IC_kw{comment_id}",
            "url": f"{self.base_url}/repos/{issue['_repo']}/issues/comments/{comment_id}",
            "html_url": f"{issue['html_url']}#issuecomment-{comment_id}", "body": body,
            "user": {"login": "listener-bot", "id": 1, "type": "User"},
            "created_at": now, "updated_at": now, "issue_url": issue["url"],
            "author_association": "OWNER",
            "_repo": issue["_repo"], "_number": issue["number"],
        }
        self.comments.append(comment)
        issue["comments"] += 1
        return _public(comment)

    def _list_comments(
        self, path: str, issue: dict[str, Any], query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        since = query.get("since")
        items = [c for c in self.comments if c["_repo"] == issue["_repo"]
                 and c["_number"] == issue["number"] and (since is None or c["updated_at"] >= since)]
        per_page = min(100, int(query.get("per_page", 30)))
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        chosen = items[(page - 1) * per_page: page * per_page]
        links = []
        url = f"{self.base_url}{path}?per_page={per_page}&page="
        if page < last:
            links += [f'<{url}{page + 1}>; rel="next"', f'<{url}{last}>; rel="last"']
        if page > 1:
            links += [f'<{url}{page - 1}>; rel="prev"', f'<{url}1>; rel="first"']
        return 200, [_public(c) for c in chosen], {"Link": ", ".join(links)} if links else {}

    def _list(self, repo: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        state = query.get("state", "open")
        items = [i for i in self.issues if i["_repo"] == repo
                 and (state == "all" or i["state"] == state)]
        if query.get("direction", "desc") == "desc":  # sorted by creation: our list order
            items.reverse()
        per_page = min(100, int(query.get("per_page", 30)))
        page = int(query.get("page", 1))
        chosen = items[(page - 1) * per_page: page * per_page]
        return 200, [_public(i) for i in chosen], {}

    def _search(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        q = query.get("q", "")
        if not q.strip():
            errors = [{"resource": "Search", "field": "q", "code": "missing"}]
            return 422, {**_error("Validation Failed", 422), "errors": errors}, {}
        self._searches += 1
        repo, kinds, where, words = None, set(), set(), []
        for quoted, bare in _TERMS.findall(q):
            if bare.startswith("repo:"):
                repo = bare[5:].lower()
            elif bare in ("is:issue", "is:pr"):
                kinds.add(bare)
            elif bare.startswith("in:"):
                where.add(bare[3:])
            else:
                words.append((quoted or bare).lower())
        found = []
        for item in self.issues:
            is_pr = "pull_request" in item
            if (repo and item["_repo"] != repo) or item["_searchable_after"] >= self._searches:
                continue
            if ("is:issue" in kinds and is_pr) or ("is:pr" in kinds and not is_pr):
                continue
            fields = [item[f] or "" for f in (where or {"title", "body"}) if f in item]
            if all(any(w in f.lower() for f in fields) for w in words):
                found.append({**_public(item), "score": 1.0})
        per_page = min(100, int(query.get("per_page", 30)))
        return 200, {"total_count": len(found), "incomplete_results": False,
                     "items": found[:per_page]}, {}


def _public(issue: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in issue.items() if not k.startswith("_")}


def _error(message: str, status: int) -> dict[str, Any]:
    return {"message": message, "documentation_url": DOCS, "status": str(status)}


def _validate(data: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    title = data.get("title")
    if not isinstance(title, str) or not title:
        errors.append({"resource": "Issue", "field": "title", "code": "missing_field"})
    elif len(title) > 256:
        errors.append({"resource": "Issue", "field": "title", "code": "custom",
                       "message": "title is too long (maximum is 256 characters)"})
    if len(data.get("body") or "") > 65_536:
        errors.append({"resource": "Issue", "field": "body", "code": "custom",
                       "message": "body is too long (maximum is 65536 characters)"})
    for name in data.get("labels") or []:
        if not isinstance(name, str) or not 0 < len(name) <= 50:
            errors.append({"resource": "Label", "field": "name", "code": "invalid",
                           "value": name})
    return errors


def _rate_headers(resource: str) -> dict[str, str]:
    limit = 30 if resource == "search" else 5000
    reset = int(datetime.now(UTC).timestamp()) + 3600
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit - 1),
            "x-ratelimit-used": "1", "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": resource}
