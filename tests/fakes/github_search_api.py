"""A fake GitHub API for the GitHub *source*: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real source (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. (``tests/fakes/github_api.py`` is the GitHub *sink*'s fake: creating issues.) It holds
repositories with issues, pull requests, issue comments and discussions, and answers the way
docs.github.com describes:

- every request needs ``Authorization: Bearer <token>`` (or ``token <token>``), else ``401
  {"message": "Bad credentials"}``; every answer carries ``x-ratelimit-limit/-remaining/-used/
  -reset/-resource`` (``core``, ``search`` or ``graphql``);
- ``GET /repos/{owner}/{repo}`` ("Get a repository"), ``GET /rate_limit``;
- ``GET /repos/{owner}/{repo}/issues`` ("List repository issues", pull requests included with a
  ``pull_request`` key): ``state`` (open, closed, all; default open), ``sort`` (created,
  updated), ``direction`` (default desc), ``since`` (only items *updated* at or after it),
  ``per_page`` (default 30, max 100), ``page``, and a ``Link`` header (``next``, ``last``,
  ``prev``, ``first``) when there is more than one page;
- ``GET /repos/{owner}/{repo}/issues/comments`` ("List issue comments for a repository"):
  ``sort``, ``direction`` (ignored without sort), ``since``, ``per_page``, ``page``, ``Link``;
- ``GET /search/issues`` ("Search issues and pull requests"): ``q`` with words and "quoted
  phrases" (every one must occur, case-insensitively, in the title or body, a simplification of
  GitHub's tokenizer), ``is:issue`` / ``is:pr`` (one is required, as GitHub now requires),
  ``in:title,body``, ``repo:o/r``, ``created:>=T``, ``created:<=T``, ``created:A..B``;
  ``sort=created``, ``order``, ``per_page``, ``page``; at most 1,000 results per query (a page
  past them is ``422``); a search text over 256 characters is ``422``; the answer is
  ``{"total_count", "incomplete_results", "items"}``;
- ``POST /graphql``: ``repository(owner, name) { discussions(first, after, orderBy:
  {field: CREATED_AT, direction: DESC}) { pageInfo nodes } }`` (an unknown repository:
  ``data.repository`` null and a ``NOT_FOUND`` error) and ``search(query, type: DISCUSSION,
  first, after) { discussionCount pageInfo nodes }`` (query syntax as above, 1,000 results);
  cursors are opaque and stable (they name the last node, not an offset).

Scripting: :meth:`FakeGitHubSearch.enqueue` queues a raw answer (status, body, headers, delay)
used once, in order, before the normal routing; :meth:`FakeGitHubSearch.after` runs a change
(an item published or deleted) once some requests have been answered. Every request is
recorded; :attr:`FakeGitHubSearch.searches` lists the ``q`` of every search received.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.fakes.base import ChangingFake, RecordedRequest, ScriptedResponse

TOKEN = "ghp_FakeSourceToken0123456789abcdefABCDEF"
RESET = 1_900_000_000  # x-ratelimit-reset of every answer (epoch seconds, far in the future)
SEARCH_LIMIT = 1000
_WORDS = re.compile(r'"([^"]*)"|(\S+)')
_REPO_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)(/issues(?:/comments)?)?$")
_LIMITS = {"core": 5000, "search": 30, "graphql": 5000}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def user(login: str, user_id: int = 1) -> dict[str, Any]:
    """A simple user as REST items carry it."""
    return {"login": login, "id": user_id, "node_id": f"U_{user_id}", "type": "User",
            "html_url": f"https://github.com/{login}", "site_admin": False}


class FakeGitHubSearch(ChangingFake):
    """The fake API; use as a context manager, add items, point ``base_url`` at it."""

    name = "fake GitHub API (source)"
    methods = ("GET", "POST")

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.repos: dict[str, int] = {}  # name → next number (issues, PRs, discussions share it)
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.discussions: list[dict[str, Any]] = []
        self._ids = 1000
        self.used = 0

    # -- content -------------------------------------------------------------------------------

    def add_repo(self, repo: str) -> None:
        with self._lock:
            self.repos.setdefault(repo, 1)

    def _number(self, repo: str) -> int:
        self.add_repo(repo)
        number = self.repos[repo]
        self.repos[repo] = number + 1
        return number

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def add_issue(self, repo: str, title: str, body: str | None, created_at: datetime, *,
                  login: str | None = "alice", pull_request: bool = False,
                  updated_at: datetime | None = None, state: str = "open") -> dict[str, Any]:
        """An issue (or pull request) as "List repository issues" returns it."""
        with self._lock:
            number, item_id = self._number(repo), self._id()
            kind = "pull" if pull_request else "issues"
            api = f"{self.base_url}/repos/{repo}"
            issue: dict[str, Any] = {
                "url": f"{api}/issues/{number}", "repository_url": api,
                "labels_url": f"{api}/issues/{number}/labels{{/name}}",
                "comments_url": f"{api}/issues/{number}/comments",
                "html_url": f"https://github.com/{repo}/{kind}/{number}", "id": item_id,
                "node_id": f"{'PR' if pull_request else 'I'}_kwDO{item_id}", "number": number,
                "title": title, "user": user(login, item_id) if login else None,
                "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}], "state": state,
                "locked": False, "assignee": None, "assignees": [], "milestone": None,
                "comments": 0, "created_at": _iso(created_at),
                "updated_at": _iso(updated_at or created_at),
                "closed_at": _iso(created_at) if state == "closed" else None,
                "author_association": "NONE", "active_lock_reason": None, "body": body,
                "reactions": {"url": f"{api}/issues/{number}/reactions", "total_count": 2,
                              "+1": 2, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0,
                              "heart": 0, "rocket": 0, "eyes": 0},
                "state_reason": "completed" if state == "closed" else None,
            }
            if pull_request:
                issue["draft"] = False
                issue["pull_request"] = {
                    "url": f"{api}/pulls/{number}",
                    "html_url": f"https://github.com/{repo}/pull/{number}",
                    "diff_url": f"https://github.com/{repo}/pull/{number}.diff",
                    "patch_url": f"https://github.com/{repo}/pull/{number}.patch",
                    "merged_at": None}
            self.issues.append(issue)
            return issue

    def add_comment(self, issue: dict[str, Any], body: str, created_at: datetime, *,
                    login: str | None = "bob") -> dict[str, Any]:
        """A comment on ``issue`` as "List issue comments for a repository" returns it."""
        with self._lock:
            comment_id = self._id()
            repo = issue["repository_url"].split("/repos/", 1)[1]
            comment = {
                "id": comment_id, "node_id": f"IC_kwDO{comment_id}",
                "url": f"{self.base_url}/repos/{repo}/issues/comments/{comment_id}",
                "html_url": f"{issue['html_url']}#issuecomment-{comment_id}", "body": body,
                "user": user(login, comment_id) if login else None,
                "created_at": _iso(created_at), "updated_at": _iso(created_at),
                "issue_url": issue["url"], "author_association": "CONTRIBUTOR",
                "reactions": {"total_count": 0},
            }
            self.comments.append(comment)
            return comment

    def add_discussion(self, repo: str, title: str, body: str, created_at: datetime, *,
                       login: str | None = "carol", followers: int = 42) -> dict[str, Any]:
        """A ``Discussion`` node as the GraphQL API returns it."""
        with self._lock:
            number, node_id = self._number(repo), self._id()
            node = {
                "id": f"D_kwDO{node_id}", "number": number, "title": title, "body": body,
                "createdAt": _iso(created_at),
                "url": f"https://github.com/{repo}/discussions/{number}", "locked": False,
                "author": {"login": login, "followers": {"totalCount": followers}}
                if login else None,
                "category": {"name": "General"}, "repository": {"nameWithOwner": repo},
            }
            self.discussions.append(node)
            return node

    def delete(self, item: dict[str, Any]) -> None:
        """Remove an issue, comment or discussion (as GitHub does when it is deleted)."""
        with self._lock:
            for group in (self.issues, self.comments, self.discussions):
                if item in group:
                    group.remove(item)

    def enqueue(self, status: int = 200, body: Any = "", headers: dict[str, str] | None = None,
                delay: float = 0.0) -> None:
        """Answer the next request with exactly this (FIFO), instead of routing it."""
        with self._lock:
            self._script.append(ScriptedResponse(status, body, dict(headers or {}), delay))

    @property
    def searches(self) -> list[str]:
        """The ``q`` of every REST search and the query of every GraphQL search received."""
        found = []
        for request in self.requests:
            if request.path == "/search/issues":
                found.append(request.query.get("q", ""))
            elif request.path == "/graphql" and isinstance(request.json, dict) \
                    and "search(" in str(request.json.get("query")):
                found.append(request.json.get("variables", {}).get("q", ""))
        return found

    # -- called from handler threads -----------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
               ) -> ScriptedResponse:
        request = RecordedRequest(method, path, query, headers, body)
        with self._lock:
            self._arrive(request)
            if self._script:
                return self._script.popleft()
            auth = headers.get("authorization", "")
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return self._answer(401, {"message": "Bad credentials",
                                          "documentation_url": "https://docs.github.com/rest",
                                          "status": "401"}, "core")
            if method == "POST" and path == "/graphql":
                return self._graphql(request.json)
            if method != "GET":
                return self._answer(404, {"message": "Not Found"}, "core")
            return self._route(path, request)

    def _answer(self, status: int, body: Any, resource: str,
                headers: dict[str, str] | None = None) -> ScriptedResponse:
        self.used += 1
        limit = _LIMITS[resource]
        rate = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit - 1),
                "x-ratelimit-used": "1", "x-ratelimit-reset": str(RESET),
                "x-ratelimit-resource": resource, "x-github-api-version-selected": "2022-11-28"}
        return ScriptedResponse(status, json.dumps(body), {**rate, **(headers or {})})

    def _route(self, path: str, request: RecordedRequest) -> ScriptedResponse:
        if path == "/rate_limit":
            resources = {name: {"limit": limit, "remaining": limit - 1, "used": 1,
                                "reset": RESET} for name, limit in _LIMITS.items()}
            return self._answer(200, {"resources": resources, "rate": resources["core"]},
                                "core")
        if path == "/search/issues":
            return self._search_issues(request.query)
        match = _REPO_PATH.match(path)
        if match is None:
            return self._answer(404, {"message": "Not Found"}, "core")
        repo = f"{match.group(1)}/{match.group(2)}"
        if repo not in self.repos:
            return self._answer(404, {"message": "Not Found",
                                      "documentation_url": "https://docs.github.com/rest"},
                                "core")
        if match.group(3) is None:
            return self._answer(200, {"id": 1, "name": match.group(2), "full_name": repo,
                                      "private": False, "has_discussions": True}, "core")
        if match.group(3) == "/issues":
            items = [i for i in self.issues if i["repository_url"].endswith(f"/repos/{repo}")]
            state = request.query.get("state", "open")
            if state != "all":
                items = [i for i in items if i["state"] == state]
        else:
            items = [c for c in self.comments if f"/repos/{repo}/issues/" in c["issue_url"]]
        return self._listing(path, items, request.query)

    def _listing(self, path: str, items: list[dict[str, Any]], params: dict[str, str]
                 ) -> ScriptedResponse:
        since = params.get("since")
        if since:
            moment = _parse_time(since)
            items = [i for i in items if _parse_time(i["updated_at"]) >= moment]
        sort = params.get("sort", "created")
        key = "updated_at" if sort == "updated" else "created_at"
        ascending = params.get("direction", "desc") == "asc"
        items = sorted(items, key=lambda i: (i[key], i["id"]), reverse=not ascending)
        per_page = min(int(params.get("per_page", 30)), 100)
        page = int(params.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(number: int, rel: str) -> str:
            query = urlencode({**params, "page": number})
            return f'<{self.base_url}{path}?{query}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        headers = {"Link": ", ".join(links)} if links else {}
        return self._answer(200, chunk, "core", headers)

    def _search_issues(self, params: dict[str, str]) -> ScriptedResponse:
        try:
            terms, filters = _parse_query(params.get("q", ""))
        except ValueError as exc:
            return self._answer(422, {"message": "Validation Failed", "errors": [
                {"message": str(exc), "resource": "Search", "field": "q",
                 "code": "invalid"}]}, "search")
        kinds = filters.pop("is", set())
        if not kinds & {"issue", "pr", "pull-request"}:
            return self._answer(422, {"message": "Query must include 'is:issue' or "
                                      "'is:pull-request'"}, "search")
        matching = [i for i in self.issues if _matches(
            terms, filters, f"{i['title']} {i['body'] or ''}", i["created_at"],
            i["repository_url"].split("/repos/", 1)[1])
            and (("pr" in kinds or "pull-request" in kinds) == ("pull_request" in i))]
        matching.sort(key=lambda i: (i["created_at"], i["id"]),
                      reverse=params.get("order", "desc") == "desc")
        per_page = min(int(params.get("per_page", 30)), 100)
        page = int(params.get("page", 1))
        if (page - 1) * per_page >= SEARCH_LIMIT:
            return self._answer(422, {"message": "Only the first 1000 search results are "
                                      "available", "documentation_url":
                                      "https://docs.github.com/v3/search/"}, "search")
        reachable = matching[:SEARCH_LIMIT]
        chunk = [{**i, "score": 1.0} for i in reachable[(page - 1) * per_page: page * per_page]]
        return self._answer(200, {"total_count": len(matching), "incomplete_results": False,
                                  "items": chunk}, "search")

    # -- GraphQL -------------------------------------------------------------------------------

    def _graphql(self, payload: Any) -> ScriptedResponse:
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return self._answer(400, {"message": "Problems parsing JSON"}, "graphql")
        query, variables = payload["query"], payload.get("variables") or {}
        first = variables.get("first")
        if type(first) is not int or not 1 <= first <= 100:
            return self._answer(200, {"errors": [{"type": "INVALID_ARGUMENTS", "message":
                                      "first must be between 1 and 100"}]}, "graphql")
        if "repository(" in query:
            repo = f"{variables.get('owner')}/{variables.get('name')}"
            if repo not in self.repos:
                return self._answer(200, {"data": {"repository": None}, "errors": [{
                    "type": "NOT_FOUND", "path": ["repository"], "locations": [],
                    "message": f"Could not resolve to a Repository with the name '{repo}'."}]},
                    "graphql")
            nodes = [d for d in self.discussions if d["repository"]["nameWithOwner"] == repo]
            connection = _connection(nodes, first, variables.get("after"))
            return self._answer(200, {"data": {"repository": {"discussions": connection}}},
                                "graphql")
        if "search(" in query and "DISCUSSION" in query:
            try:
                terms, filters = _parse_query(str(variables.get("q", "")))
            except ValueError as exc:
                return self._answer(200, {"errors": [{"type": "INVALID", "message": str(exc)}]},
                                    "graphql")
            filters.pop("is", None)
            nodes = [d for d in self.discussions if _matches(
                terms, filters, f"{d['title']} {d['body']}", d["createdAt"],
                d["repository"]["nameWithOwner"])][:SEARCH_LIMIT]
            connection = _connection(nodes, first, variables.get("after"))
            connection["discussionCount"] = len(nodes)
            return self._answer(200, {"data": {"search": connection}}, "graphql")
        return self._answer(200, {"errors": [{"message": "unsupported query"}]}, "graphql")


def _parse_query(q: str) -> tuple[list[str], dict[str, Any]]:
    """Search words and qualifiers: ``is`` (a set), ``repo`` (a set), ``created`` (bounds)."""
    terms: list[str] = []
    filters: dict[str, Any] = {}
    for match in _WORDS.finditer(q):
        phrase, word = match.group(1), match.group(2)
        if phrase is not None:
            terms.append(phrase.lower())
            continue
        name, _, value = word.partition(":")
        if not value or name not in ("is", "in", "repo", "created", "sort"):
            terms.append(word.lower())
        elif name in ("is", "repo"):
            filters.setdefault(name, set()).add(value.lower())
        elif name == "created":
            filters["created"] = _bounds(value)
    text = " ".join(terms)
    if len(text) > 256:
        raise ValueError("The search is longer than 256 characters.")
    return terms, filters


def _bounds(value: str) -> tuple[datetime | None, datetime | None]:
    if ".." in value:
        low, high = value.split("..", 1)
        return (_parse_time(low) if low != "*" else None, _parse_time(high) if high != "*"
                else None)
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            moment = _parse_time(value[len(op):])
            return (moment, None) if op.startswith(">") else (None, moment)
    moment = _parse_time(value)
    return moment, moment


def _matches(terms: list[str], filters: dict[str, Any], text: str, created: str, repo: str
             ) -> bool:
    if "repo" in filters and repo.lower() not in filters["repo"]:
        return False
    low, high = filters.get("created", (None, None))
    moment = _parse_time(created)
    if (low is not None and moment < low) or (high is not None and moment > high):
        return False
    haystack = text.lower()
    return all(term in haystack for term in terms)


def _cursor(node: dict[str, Any]) -> str:
    return base64.b64encode(f"cursor:v2:{node['createdAt']}:{node['number']}".encode()).decode()


def _connection(nodes: list[dict[str, Any]], first: int, after: Any) -> dict[str, Any]:
    """Newest first, ``first`` nodes after the node ``after`` names (stable under inserts)."""
    ordered = sorted(nodes, key=lambda d: (d["createdAt"], d["number"]), reverse=True)
    if isinstance(after, str):
        try:
            prefix, number = base64.b64decode(after).decode().rsplit(":", 1)
            created = prefix.removeprefix("cursor:v2:")
            int(number)
        except ValueError:
            created, number = "", "0"
        ordered = [d for d in ordered if (d["createdAt"], d["number"]) < (created, int(number))]
    chunk = ordered[:first]
    return {"pageInfo": {"hasNextPage": len(ordered) > first,
                         "endCursor": _cursor(chunk[-1]) if chunk else None},
            "nodes": chunk}
