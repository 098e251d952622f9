"""``listener forget`` (issue 18) on a real SQLite file through click's CliRunner: it asks first
with the number of posts, ``--yes`` does not, the counts are printed, an unknown author erases
nothing and succeeds, and the audit log names the OS user."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from listener.commands.privacy import forget
from storage import privacy
from storage.db import open_db
from storage.engine import Db
from tests.dbrows import rows
from tests.storage.test_privacy import _post, _store

pytestmark = pytest.mark.usefixtures("logging_state")


@pytest.fixture
def database(config: Path) -> Iterator[Db]:
    conn = open_db(config.parent / "listener.db")
    _store(conn, _post("x", "1", "Alice", "my parcel never came", timedelta(hours=1)),
           _post("x", "2", "alice", "still waiting", timedelta(days=400)),
           _post("x", "3", "bob", "fine here", timedelta(hours=2)))
    yield conn
    conn.close()


def invoke(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(forget, [*args, "-c", str(config)], input=input,
                              env={"LOGNAME": "tester", "USER": "tester",
                                   "LISTENER_CONFIG": None})


def _texts(db: Db) -> dict[str, str]:
    return {r["platform_id"]: r["text"] for r in rows(db, "posts")}


def test_forget_asks_with_the_count_and_a_no_changes_nothing(config: Path,
                                                              database: Db) -> None:
    result = invoke(config, "--platform", "x", "--author", "ALICE", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert "Erase 2 post(s) by 'ALICE' on x" in result.output
    assert privacy.ERASED not in _texts(database).values()
    assert rows(database, "audit_log") == []


def test_forget_after_yes_erases_prints_the_counts_and_audits_the_os_user(
    config: Path, database: Db,
) -> None:
    result = invoke(config, "--platform", "x", "--author", "alice", input="y\n")
    assert result.exit_code == 0, result.output
    assert "erased 2 post(s)" in result.output
    digest = hashlib.sha256(b"alice").hexdigest()
    assert f"author sha256 {digest}" in result.output and "VACUUM" in result.output
    assert _texts(database) == {"1": privacy.ERASED, "2": privacy.ERASED, "3": "fine here"}
    [entry] = rows(database, "audit_log")
    assert (entry["actor"], entry["action"]) == ("cli:tester", "privacy.forget")
    assert json.loads(entry["detail"])["posts"] == 2


def test_yes_skips_the_question_and_an_unknown_author_is_zero_not_an_error(
    config: Path, database: Db,
) -> None:
    result = invoke(config, "--platform", "x", "--author", "nobody", "--yes")
    assert result.exit_code == 0, result.output
    assert "Erase" not in result.output and "erased 0 post(s)" in result.output
    assert privacy.ERASED not in _texts(database).values()


def test_older_than_days_erases_old_posts_now(config: Path, database: Db) -> None:
    result = invoke(config, "--older-than-days", "365", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Erase 1 post(s) dated before" in result.output and "erased 1 post(s)" in result.output
    assert _texts(database)["2"] == privacy.ERASED and _texts(database)["1"] != privacy.ERASED
    [entry] = rows(database, "audit_log")
    assert (entry["actor"], entry["action"]) == ("cli:tester", "privacy.retention")


@pytest.mark.parametrize("args", [
    ("--platform", "x"),
    ("--author", "alice"),
    ("--platform", "x", "--author", "  "),
    ("--older-than-days", "30", "--author", "alice"),
    ("--older-than-days", "0"),
])
def test_wrong_option_mixes_are_usage_errors(config: Path, args: tuple[str, ...]) -> None:
    result = invoke(config, *args, "--yes")
    assert result.exit_code == 2, result.output
    assert not (config.parent / "listener.db").exists()
