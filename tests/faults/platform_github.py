"""The fault matrix's entries for the github source (:mod:`tests.faults._sources`).

The source reads one repository (listings of issues and comments, GraphQL discussions) and
searches GitHub with the brand's query (REST issue and pull-request search, GraphQL discussion
search), so every kind of fault meets every request path; an issue published on the fake is
found by both the repository listing and the search, and must be stored once.
"""

from __future__ import annotations

from datetime import datetime

from tests.fakes import github_search_api
from tests.faults.platform import Platform

REPO = "acme/app"


def _start() -> github_search_api.FakeGitHubSearch:
    fake = github_search_api.FakeGitHubSearch()
    fake.add_repo(REPO)
    return fake


def _issue(fake: github_search_api.FakeGitHubSearch, number: int, at: datetime) -> None:
    fake.add_issue(REPO, f"acme cloud is down again ({number})", "the dashboard times out", at)


PLATFORMS: dict[str, Platform] = {
    "github": Platform(
        "gh", _start,
        lambda f: f'type: github, name: gh, base_url: "{f.base_url}", '
                  f'token: {{"$env": GITHUB_TOKEN}}, repos: [{REPO}], search: true',
        _issue, {"GITHUB_TOKEN": github_search_api.TOKEN}),
}
