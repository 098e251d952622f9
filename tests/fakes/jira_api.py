"""A fake Jira Cloud REST API v3 for tests: real HTTP on 127.0.0.1, an ephemeral port.

Tests point the real sink (httpx) at it with ``base_url=fake.base_url``; nothing of ours is
mocked. It keeps the issues it created and answers like Jira Cloud's documentation describes:

- every request needs Basic auth with the configured email and API token, else ``401``;
- ``POST /rest/api/3/issue`` ("Create issue") validates ``fields`` the way Jira does and answers
  ``201 {"id", "key", "self"}``, or ``400 {"errorMessages": [...], "errors": {field: message}}``:
  unknown project (``project: valid project is required``), unknown issue type, a field that is
  not on the create screen (``Field 'priority' cannot be set. It is not on the appropriate
  screen, or unknown.``), a summary over 255 characters or with a line break, labels with spaces,
  a description that is not valid Atlassian Document Format (non-empty text nodes, known node and
  mark types, ``link`` marks with an href, headings with a level 1-6) or whose JSON is over
  32,767 characters;
- ``POST /rest/api/3/search/jql`` ("enhanced search") understands ``labels = "X"`` (optionally
  ``project = KEY AND …``) and answers ``{"issues": [{"id", "key", "self", "fields"}],
  "isLast": true}``. Search is eventually consistent in Jira: with ``search_lag=n`` a new issue
  is missed by the next ``n`` searches.
- ``POST /rest/api/3/issue/{issueIdOrKey}/comment`` ("Add comment") with ``{"body": <ADF>}``:
  ``201`` with the comment (``id``, ``self``, ``author``, ``body``, ``created`` …); ``400
  {"errorMessages": [], "errors": {"comment": ...}}`` for a missing or invalid ADF body or one
  over 32,767 characters of JSON; ``404 {"errorMessages": ["Issue does not exist or you do not
  have permission to see it."], "errors": {}}`` for an unknown (or :meth:`FakeJira.delete`d)
  issue. Comments have no idempotency key: a replayed POST adds a second one.
- ``GET /rest/api/3/issue/{issueIdOrKey}/comment`` ("Get comments"): ``startAt``,
  ``maxResults`` (default and maximum 100 here), ``orderBy`` ``created``/``+created``/
  ``-created``; answers ``{"startAt", "maxResults", "total", "comments": [...]}``, read from the
  database (no search lag); ``404`` as above.

Scripting: :meth:`FakeJira.enqueue` queues a raw answer (status, JSON body, headers, delay) used
once, in order, for the next request to ``path`` (any path if None). With ``commit=True`` the
request is first handled normally (the issue *is* created) and only its answer is replaced: a
delay or :data:`HANG_UP` then makes the client give up on a request that did land.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tests.fakes.base import HANG_UP, Answer, PathScriptedFake, RecordedRequest, ScriptedResponse
from tests.fakes.base import PathScripted as Scripted

__all__ = ["CREATE_PATH", "HANG_UP", "SEARCH_PATH", "FakeJira", "Scripted", "comment_path",
           "valid_adf"]

CREATE_PATH = "/rest/api/3/issue"
SEARCH_PATH = "/rest/api/3/search/jql"
COMMENTS_MAX = 100
NOW = "2026-11-20T12:00:00.000+0000"
NOT_FOUND = {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
             "errors": {}}
_COMMENT = re.compile(r"^/rest/api/3/issue/([^/]+)/comment$")
DESCRIPTION_LIMIT = 32_767
ON_SCREEN = frozenset({"project", "issuetype", "summary", "description", "labels", "priority"})
BLOCK_NODES = frozenset({"paragraph", "bulletList", "orderedList", "listItem", "heading",
                         "blockquote", "codeBlock", "rule", "panel"})
INLINE_NODES = frozenset({"text", "hardBreak", "mention", "emoji", "inlineCard"})
MARKS = frozenset({"link", "strong", "em", "code", "strike", "underline"})
_JQL = re.compile(r'^\s*(?:project\s*=\s*"?(\w+)"?\s+AND\s+)?labels\s*=\s*"([^"\\]+)"\s*$',
                  re.IGNORECASE)


class FakeJira(PathScriptedFake):
    """A scriptable fake Jira Cloud site; use as a context manager or call start()/stop()."""

    name = "fake Jira"
    content_type = "application/json;charset=UTF-8"
    json_strings = True  # a str body is a JSON string: Jira answers JSON, never plain text

    def __init__(
        self, *, email: str = "bot@example.com", token: str = "jira-api-token-SECRET-1234",
        projects: tuple[str, ...] = ("SUP",), issue_types: tuple[str, ...] = ("Task", "Bug"),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest"),
        hidden_fields: tuple[str, ...] = (), search_lag: int = 0,
    ) -> None:
        super().__init__()
        self.email, self.token = email, token
        self.projects, self.issue_types, self.priorities = projects, issue_types, priorities
        self.hidden_fields, self.search_lag = frozenset(hidden_fields), search_lag
        self.issues: list[dict[str, Any]] = []
        self.comments: dict[str, list[dict[str, Any]]] = {}  # issue key → comments, oldest first
        self._numbers: dict[str, int] = {}  # project → the last issue number it gave
        self._searches = 0

    def comments_of(self, key: str) -> list[dict[str, Any]]:
        """The comments issue ``key`` shows, oldest first."""
        with self._lock:
            return list(self.comments.get(key, []))

    def delete(self, key: str) -> None:
        """Delete the issue (someone did): it answers 404 from then on."""
        with self._lock:
            self.issues = [i for i in self.issues if i["key"] != key]
            self.comments.pop(key, None)

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        request = RecordedRequest(method, path, query, headers, body)
        parsed, params = request.json, request.query
        with self._lock:
            self._record(request)
            return self._scripted_or(
                path, lambda: ScriptedResponse(*self._route(method, path, params, headers,
                                                            parsed))
            )

    def _route(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 401, {"errorMessages": ["Client must be authenticated to access this "
                                           "resource."], "errors": {}}
        if method == "POST" and path == CREATE_PATH:
            return self._create(data)
        if method == "POST" and path == SEARCH_PATH:
            return self._search(data)
        comment = _COMMENT.match(path)
        if comment is not None and method in ("GET", "POST"):
            issue = next((i for i in self.issues if comment.group(1) in (i["key"], i["id"])),
                         None)
            if issue is None:
                return 404, NOT_FOUND
            if method == "POST":
                return self._add_comment(issue, data)
            return self._get_comments(issue, params)
        return 404, {"errorMessages": ["Not found"], "errors": {}}

    def _add_comment(self, issue: dict[str, Any], data: Any) -> tuple[int, Any]:
        body = data.get("body") if isinstance(data, dict) else None
        if body is None:
            return 400, {"errorMessages": [], "errors": {"comment": "Comment body can not be "
                                                                    "empty!"}}
        if not valid_adf(body):
            return 400, {"errorMessages": [], "errors": {"comment": (
                "Operation value must be an Atlassian Document (see the Atlassian Document "
                "Format)")}}
        if len(json.dumps(body, ensure_ascii=False)) > DESCRIPTION_LIMIT:
            return 400, {"errorMessages": [], "errors": {"comment": (
                "CONTENT_LIMIT_EXCEEDED: The entered text is too long. It exceeds the allowed "
                "limit of 32,767 characters.")}}
        comments = self.comments.setdefault(issue["key"], [])
        comment_id = str(20000 + sum(len(c) for c in self.comments.values()))
        author = {"accountId": "5b10a2844c20165700ede21g", "displayName": "listener bot",
                  "active": True}
        comment = {"self": f"{issue['self']}/comment/{comment_id}", "id": comment_id,
                   "author": author, "body": body, "updateAuthor": author, "created": NOW,
                   "updated": NOW, "jsdPublic": True}
        comments.append(comment)
        return 201, comment

    def _get_comments(self, issue: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
        order = params.get("orderBy", "created")
        if order not in ("created", "+created", "-created"):
            return 400, {"errorMessages": [f"Invalid orderBy: {order}"], "errors": {}}
        found = list(self.comments.get(issue["key"], []))
        if order == "-created":
            found.reverse()
        start = int(params.get("startAt", 0))
        size = min(COMMENTS_MAX, int(params.get("maxResults", COMMENTS_MAX)))
        return 200, {"startAt": start, "maxResults": size, "total": len(found),
                     "comments": found[start: start + size]}

    def _create(self, data: Any) -> tuple[int, Any]:
        fields = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["Can not deserialize the request"], "errors": {}}
        errors = _field_errors(self, fields)
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        project = fields["project"]["key"]
        number = self._numbers[project] = self._numbers.get(project, 0) + 1  # never reused
        issue_id = str(9999 + sum(self._numbers.values()))  # 10000 first, as before
        issue = {"id": issue_id, "key": f"{project}-{number}",
                 "self": f"{self.base_url}/rest/api/3/issue/{issue_id}", "fields": fields,
                 "searchable_after": self._searches + self.search_lag}
        self.issues.append(issue)
        return 201, {"id": issue["id"], "key": issue["key"], "self": issue["self"]}

    def _search(self, data: Any) -> tuple[int, Any]:
        jql = data.get("jql") if isinstance(data, dict) else None
        match = _JQL.match(jql or "")
        if match is None:
            return 400, {"errorMessages": [f"Error in the JQL Query: {jql!r}"], "errors": {}}
        self._searches += 1
        project, label = match.groups()
        found = [i for i in self.issues
                 if label in i["fields"].get("labels", [])
                 and (project is None or i["fields"]["project"]["key"] == project)
                 and i["searchable_after"] < self._searches]
        wanted = data.get("fields") or []
        return 200, {"issues": [
            {"id": i["id"], "key": i["key"], "self": i["self"],
             "fields": {k: i["fields"][k] for k in wanted if k in i["fields"]}}
            for i in found[: int(data.get("maxResults") or 50)]
        ], "isLast": True}


def _field_errors(fake: FakeJira, fields: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in fields:
        if name not in ON_SCREEN or name in fake.hidden_fields:
            errors[name] = (f"Field '{name}' cannot be set. It is not on the appropriate "
                            "screen, or unknown.")
    if (fields.get("project") or {}).get("key") not in fake.projects:
        errors["project"] = "valid project is required"
    if (fields.get("issuetype") or {}).get("name") not in fake.issue_types:
        errors["issuetype"] = "The issue type selected is invalid."
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors["summary"] = "You must specify a summary of the issue."
    elif len(summary) > 255:
        errors["summary"] = "Summary can't exceed 255 characters."
    elif "\n" in summary or "\r" in summary:
        errors["summary"] = "The summary is invalid because it contains newline characters."
    description = fields.get("description")
    if description is not None and not valid_adf(description):
        errors["description"] = ("Operation value must be an Atlassian Document (see the "
                                 "Atlassian Document Format)")
    elif len(json.dumps(description, ensure_ascii=False)) > DESCRIPTION_LIMIT:
        errors["description"] = ("CONTENT_LIMIT_EXCEEDED: The entered text is too long. It "
                                 "exceeds the allowed limit of 32,767 characters.")
    for label in fields.get("labels") or []:
        if not isinstance(label, str) or not label or any(c.isspace() for c in label):
            errors["labels"] = f"The label '{label}' contains spaces which is invalid."
    priority = fields.get("priority")
    if priority is not None and "priority" not in errors and \
            (priority or {}).get("name") not in fake.priorities:
        errors["priority"] = "The priority selected is invalid."
    return errors


def valid_adf(doc: Any) -> bool:
    """The structural rules of the ADF JSON schema that matter here (doc, nodes, marks)."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return False
    content = doc.get("content")
    return isinstance(content, list) and all(_valid_node(n, BLOCK_NODES) for n in content)


def _valid_node(node: Any, allowed: frozenset[str]) -> bool:
    if not isinstance(node, dict) or node.get("type") not in allowed:
        return False
    if node["type"] == "text":
        marks = node.get("marks", [])
        return (isinstance(node.get("text"), str) and len(node["text"]) >= 1
                and isinstance(marks, list) and all(_valid_mark(m) for m in marks))
    if node["type"] == "heading" and (node.get("attrs") or {}).get("level") not in range(1, 7):
        return False  # the schema requires attrs.level 1-6
    children = node.get("content", [])
    inner = INLINE_NODES if node["type"] in ("paragraph", "heading") else BLOCK_NODES
    return isinstance(children, list) and all(_valid_node(c, inner) for c in children)


def _valid_mark(mark: Any) -> bool:
    if not isinstance(mark, dict) or mark.get("type") not in MARKS:
        return False
    return mark["type"] != "link" or isinstance((mark.get("attrs") or {}).get("href"), str)


def comment_path(key: str) -> str:
    """``/rest/api/3/issue/SUP-1/comment``: the path to script (:meth:`FakeJira.enqueue`)."""
    return f"/rest/api/3/issue/{key}/comment"
