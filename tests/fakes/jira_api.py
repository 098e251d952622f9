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

Scripting: :meth:`FakeJira.enqueue` queues a raw answer (status, JSON body, headers, delay) used
once, in order, for the next request to ``path`` (any path if None). With ``commit=True`` the
request is first handled normally (the issue *is* created) and only its answer is replaced: a
delay or :data:`HANG_UP` then makes the client give up on a request that did land.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import HANG_UP, Answer, PathScriptedFake, ScriptedResponse, parse_json
from tests.fakes.base import PathScripted as Scripted

__all__ = ["CREATE_PATH", "HANG_UP", "SEARCH_PATH", "FakeJira", "Recorded", "Scripted",
           "valid_adf"]

CREATE_PATH = "/rest/api/3/issue"
SEARCH_PATH = "/rest/api/3/search/jql"
DESCRIPTION_LIMIT = 32_767
ON_SCREEN = frozenset({"project", "issuetype", "summary", "description", "labels", "priority"})
BLOCK_NODES = frozenset({"paragraph", "bulletList", "orderedList", "listItem", "heading",
                         "blockquote", "codeBlock", "rule", "panel"})
INLINE_NODES = frozenset({"text", "hardBreak", "mention", "emoji", "inlineCard"})
MARKS = frozenset({"link", "strong", "em", "code", "strike", "underline"})
_JQL = re.compile(r'^\s*(?:project\s*=\s*"?(\w+)"?\s+AND\s+)?labels\s*=\s*"([^"\\]+)"\s*$',
                  re.IGNORECASE)


@dataclass(frozen=True)
class Recorded:
    """What the fake received. ``headers`` keys are lower-case; ``json`` is None if unparsable."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


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
        self._searches = 0

    # -- called from handler threads -------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        parsed = parse_json(body)
        with self._lock:
            self._record(Recorded(method, path, headers, body, parsed))
            return self._scripted_or(
                path, lambda: ScriptedResponse(*self._route(method, path, headers, parsed))
            )

    def _route(
        self, method: str, path: str, headers: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 401, {"errorMessages": ["Client must be authenticated to access this "
                                           "resource."], "errors": {}}
        if method == "POST" and path == CREATE_PATH:
            return self._create(data)
        if method == "POST" and path == SEARCH_PATH:
            return self._search(data)
        return 404, {"errorMessages": ["Not found"], "errors": {}}

    def _create(self, data: Any) -> tuple[int, Any]:
        fields = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["Can not deserialize the request"], "errors": {}}
        errors = _field_errors(self, fields)
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        project = fields["project"]["key"]
        number = 1 + sum(1 for i in self.issues if i["key"].startswith(project + "-"))
        issue_id = str(10000 + len(self.issues))
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
