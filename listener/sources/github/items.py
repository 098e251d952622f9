"""GitHub items as posts: issues and pull requests (REST), issue comments (REST), discussions
(GraphQL nodes).

Ids (``Post.platform_id``), one stable form per item, readable and unique across a repository:

- an issue, a pull request or a discussion: ``owner/name#123`` (the three share one number
  sequence per repository, the form the GitHub sink and GitHub itself use);
- an issue or pull-request comment: ``owner/name#123/comment/456789`` (its REST id after the
  number of the issue it is on).

``thread`` is the issue's or discussion's id, so a comment's alert is threaded under the issue's.
An item whose author deleted their account comes with the ``ghost`` user (REST) or no author
(GraphQL): it is kept, with no author. An item with neither title nor body has nothing to read and
is skipped. A record that is not what the API documents (no number, no creation time, a field of
the wrong type) raises ``ValueError``: the source reports it as a rejected record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.core.models import Post, parse_iso

PLATFORM = "github"
GHOST = "ghost"
"""The login GitHub shows for the author of anything whose account was deleted."""
_REPO_URL = re.compile(r"/repos/([^/]+)/([^/]+)/?$")
_ISSUE_URL = re.compile(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/?$")
_HTML_URL = re.compile(r"^https?://[^/]+/([^/]+)/([^/]+)/(?:issues|pull|discussions)/(\d+)")


@dataclass(frozen=True)
class Item:
    """One item of an answer: its id and creation time (what the cursor counts), its kind, and
    the post (None: nothing to read)."""

    id: str
    created: datetime
    kind: str  # "issue" | "pull_request" | "comment" | "discussion"
    post: Post | None


def issue_item(data: Any, source: str, brand: str | None) -> Item:
    """An issue or pull request of a repository listing or of ``/search/issues``."""
    obj = _object(data)
    number = _int(obj, "number")
    repo = _repo_of(obj, number)
    created = _time(obj, "created_at")
    kind = "pull_request" if isinstance(obj.get("pull_request"), dict) else "issue"
    item_id = f"{repo}#{number}"
    text = _joined(_text(obj, "title"), _text(obj, "body"))
    author, user_type = _user(obj.get("user"))
    raw: dict[str, Any] = {
        "kind": kind, "repo": repo, "number": number, "id": obj.get("id"),
        "node_id": obj.get("node_id"), "state": obj.get("state"),
        "state_reason": obj.get("state_reason"), "labels": _labels(obj.get("labels")),
        "comments": obj.get("comments"), "author_association": obj.get("author_association"),
        "user_type": user_type, "draft": obj.get("draft"), "locked": obj.get("locked"),
        "reactions": _reactions(obj.get("reactions")),
    }
    return Item(item_id, created, kind, _post(
        item_id, text, created, source, _text(obj, "html_url") or None, author, None, brand,
        item_id, raw))


def comment_item(data: Any, source: str, brand: str | None) -> Item:
    """A comment of ``/repos/{owner}/{repo}/issues/comments`` (issues' and pull requests')."""
    obj = _object(data)
    comment_id = _int(obj, "id")
    issue_url = _text(obj, "issue_url")
    match = _ISSUE_URL.search(issue_url)
    if match is None:
        raise ValueError(f"comment {comment_id}: 'issue_url' is not a repository issue's URL")
    repo, number = f"{match.group(1)}/{match.group(2)}", int(match.group(3))
    created = _time(obj, "created_at")
    item_id = f"{repo}#{number}/comment/{comment_id}"
    author, user_type = _user(obj.get("user"))
    raw: dict[str, Any] = {
        "kind": "comment", "repo": repo, "number": number, "id": comment_id,
        "node_id": obj.get("node_id"), "author_association": obj.get("author_association"),
        "user_type": user_type, "reactions": _reactions(obj.get("reactions")),
    }
    return Item(item_id, created, "comment", _post(
        item_id, _text(obj, "body").strip(), created, source, _text(obj, "html_url") or None,
        author, None, brand, f"{repo}#{number}", raw))


def discussion_item(data: Any, source: str, brand: str | None, repo: str | None = None
                    ) -> Item:
    """A ``Discussion`` node of the GraphQL API (a repository's discussions, or a search's)."""
    obj = _object(data)
    number = _int(obj, "number")
    owner = obj.get("repository")
    name = owner.get("nameWithOwner") if isinstance(owner, dict) else None
    repo = name if isinstance(name, str) and "/" in name else repo
    if repo is None:
        raise ValueError(f"discussion {number}: no repository.nameWithOwner")
    created = _time(obj, "createdAt")
    item_id = f"{repo}#{number}"
    author, followers = None, None
    person = obj.get("author")
    if person is not None:
        if not isinstance(person, dict):
            raise ValueError(f"discussion {number}: 'author' is not an object")
        login = person.get("login")
        author = login if isinstance(login, str) and login and login != GHOST else None
        counted = person.get("followers")
        if isinstance(counted, dict) and type(counted.get("totalCount")) is int:
            followers = counted["totalCount"]
    category = obj.get("category")
    raw: dict[str, Any] = {
        "kind": "discussion", "repo": repo, "number": number, "node_id": obj.get("id"),
        "category": category.get("name") if isinstance(category, dict) else None,
        "locked": obj.get("locked"),
    }
    text = _joined(_text(obj, "title"), _text(obj, "body"))
    return Item(item_id, created, "discussion", _post(
        item_id, text, created, source, _text(obj, "url") or None, author, followers, brand,
        item_id, raw))


# -- helpers -----------------------------------------------------------------------------------


def _post(item_id: str, text: str, created: datetime, source: str, url: str | None,
          author: str | None, followers: int | None, brand: str | None, thread: str,
          raw: dict[str, Any]) -> Post | None:
    if not text:
        return None
    return Post(platform=PLATFORM, platform_id=item_id, text=text, created_at=created,
                source=source, url=url, author=author, author_followers=followers, brand=brand,
                thread=thread, raw={k: v for k, v in raw.items() if v is not None})


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise ValueError(f"'{key}' is missing or not a number")
    return value


def _text(obj: dict[str, Any], key: str) -> str:
    """A string field; missing or null is empty (a body left empty is null)."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is not a string")
    return value


def _time(obj: dict[str, Any], key: str) -> datetime:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is missing")
    try:
        return parse_iso(value)
    except ValueError:
        raise ValueError(f"'{key}' is not an ISO 8601 time: {value[:40]!r}") from None


def _joined(title: str, body: str) -> str:
    title, body = " ".join(title.split()), body.strip()
    return f"{title}\n\n{body}" if title and body else title or body


def _repo_of(obj: dict[str, Any], number: int) -> str:
    """``owner/name`` from ``repository_url`` (REST), else from ``html_url``."""
    match = _REPO_URL.search(_text(obj, "repository_url"))
    if match is not None:
        return f"{match.group(1)}/{match.group(2)}"
    html = _HTML_URL.match(_text(obj, "html_url"))
    if html is not None:
        return f"{html.group(1)}/{html.group(2)}"
    raise ValueError(f"item {number}: no repository_url or html_url to name its repository")


def _user(user: Any) -> tuple[str | None, str | None]:
    """(login, account type); no login for a deleted account (``ghost``) or none at all."""
    if user is None:
        return None, None
    if not isinstance(user, dict):
        raise ValueError("'user' is not an object")
    login, kind = user.get("login"), user.get("type")
    login = login if isinstance(login, str) and login and login != GHOST else None
    return login, kind if isinstance(kind, str) else None


def _labels(labels: Any) -> list[str] | None:
    if not isinstance(labels, list):
        return None
    names = [label.get("name") if isinstance(label, dict) else label for label in labels]
    return [name for name in names if isinstance(name, str)]


def _reactions(reactions: Any) -> int | None:
    total = reactions.get("total_count") if isinstance(reactions, dict) else None
    return total if type(total) is int else None
