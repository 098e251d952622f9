"""One source end to end: `listener run --once` from its fake platform into a Slack alert.

Each network source's test module calls :func:`run_once_into_alert` with its own ``sources:``
entry (pointing at its fake on 127.0.0.1) after publishing an unhappy post that mentions
``acme``. The real command line runs in a fresh process on a real SQLite file with the default
model: collect → classify → rules → dispatch → :class:`~tests.fakes.slack.FakeSlackWebhook`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from tests.e2e import UNHAPPY_TO_SLACK, cli_env, run_cli, slack_texts
from tests.fakes.slack import FakeSlackWebhook

CONFIG = """\
storage:
  path: listener.db
metrics:
  port: null
brands:
  - name: acme
    query: {query}
sources:
{entry}
"""
DISPATCH = """\
dispatch:
  once_max_wait: 10
  backoff_initial: 1
"""


@dataclass(frozen=True)
class Outcome:
    """What one `run --once` did: the alerts Slack received and the posts stored."""

    alerts: list[str]
    posts: list[dict[str, object]]
    stdout: str
    stderr: str


def run_once_into_alert(tmp_path: Path, entry: str, env: dict[str, str] | None = None, *,
                        query: str = "acme", runs: int = 1) -> Outcome:
    """Run `listener run --once` ``runs`` times with ``entry`` (the YAML of one item under
    ``sources:``, indented by two spaces) and a rule that sends negative posts to Slack.

    ``env`` holds the secrets the entry names with ``{"$env": …}``. Every run must exit 0.
    """
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(entry=entry, query=query) + UNHAPPY_TO_SLACK + DISPATCH,
                      encoding="utf-8")
    with FakeSlackWebhook() as slack:
        variables = {**cli_env(slack.url), **(env or {})}
        out: list[str] = []
        err: list[str] = []
        for _ in range(runs):
            done = run_cli(["run", "--once", "-c", str(config)], variables)
            assert done.returncode == 0, done.stderr
            out.append(done.stdout)
            err.append(done.stderr)
        alerts = slack_texts(slack.requests)
    posts = list(Database(tmp_path / "listener.db").query(
        "SELECT platform, platform_id, source, text, url, author, author_followers, lang, kind,"
        " rating, created_at FROM posts ORDER BY id"))
    return Outcome(alerts, posts, "".join(out), "".join(err))
