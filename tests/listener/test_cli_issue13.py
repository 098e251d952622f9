"""Issue 13, items 7–9: failures cron can see, and what a newcomer tripped over in the CLI.

Real parts throughout: the CLI (click's CliRunner in this process, or a subprocess as cron runs
it), SQLite files, the default model, and the webhook sink's real client against a port nothing
listens on (unreachable) or the fake receiver on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from classifiers.base import Classifier
from classifiers.loader import load_classifier
from listener import health
from listener.cli import cli
from listener.commands.status import status as status_command
from listener.config import load_config
from listener.core.log import setup_logging
from listener.core.models import Page, Post, to_iso
from listener.metrics import scrape_registry
from listener.pipeline import Runtime
from storage import db as store
from tests.e2e import NEGATIVE, POSITIVE, cli_env, run_cli
from tests.fakes.webhook_receiver import DEFAULT_PATH, FakeWebhookReceiver

HOOK_SECRET = "whsec-test-0123456789abcdef"  # the fake receiver's default
CONFIG = """\
storage: {{path: listener.db}}
metrics: {{port: null, unhealthy_after: 3}}
sources:
  - {{type: file, name: imports, path: posts.jsonl}}
rules:
  - name: unhappy
    when: {{sentiment: [negative], min_probability: 0.6}}
    destinations: [hook]
destinations:
  - type: webhook
    name: hook
    url: "http://127.0.0.1:{port}{path}"
    secret: "{secret}"
    allow_insecure_http: true
    allow_private_network: true
    timeout: 2
dispatch: {{once_max_wait: {wait}, max_attempts: {attempts}, backoff_initial: {backoff}}}
"""


@pytest.fixture(scope="module")
def model() -> Classifier:
    return load_classifier("default", batch_size=8, device="cpu")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def posts_now(texts: list[str], start: int = 1) -> str:
    """JSON Lines posts dated now: fresh enough for every per-post rule."""
    stamp = to_iso(datetime.now(UTC))
    return "".join(json.dumps({"id": str(i), "text": t, "author": f"user{i}",
                               "created_at": stamp}) + "\n" for i, t in enumerate(texts, start))


def write_setup(tmp_path: Path, texts: list[str], *, port: int, attempts: int = 1,
                wait: float = 0, backoff: float = 30) -> Path:
    (tmp_path / "posts.jsonl").write_text(posts_now(texts), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(port=port, path=DEFAULT_PATH, secret=HOOK_SECRET, wait=wait,
                                  attempts=attempts, backoff=backoff), encoding="utf-8")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


# -- 1. run --once: a distinct exit status when alerts were parked ----------------------------

def test_run_once_exits_4_when_alerts_were_parked_and_1_wins(tmp_path: Path) -> None:
    # before: exit 0 while every alert of the run was parked as failed
    config = write_setup(tmp_path, NEGATIVE + POSITIVE[:1], port=closed_port())
    env = cli_env("http://127.0.0.1:9/unused")
    parked = run_cli(["run", "--once", "-c", str(config)], env)
    assert parked.returncode == 4, parked.stderr
    assert (f"{len(NEGATIVE)} alert(s) parked as failed in this run: `listener alerts list "
            "--status failed` shows why") in parked.stderr
    db = Database(tmp_path / "listener.db")
    assert [r["status"] for r in db.query("SELECT status FROM alerts")] == ["failed"] * 3

    # a stage fails too (an unreadable source) and one more alert is parked: 1 wins, both said
    broken = "  - {type: file, name: broken, path: notes.txt}\nrules:\n"
    config.write_text(config.read_text().replace("rules:\n", broken, 1))
    (tmp_path / "notes.txt").write_text("not a known format\n")
    with (tmp_path / "posts.jsonl").open("a") as f:
        f.write(posts_now(NEGATIVE[:1], start=10))
    both = run_cli(["run", "--once", "-c", str(config)], env)
    assert both.returncode == 1, both.stderr
    assert "1 alert(s) parked as failed in this run" in both.stderr
    assert "a stage failed" in both.stderr

    # nothing new: the alerts parked by earlier runs do not fail this one
    config.write_text(config.read_text().replace(broken, "rules:\n"))
    quiet = run_cli(["run", "--once", "-c", str(config)], env)
    assert quiet.returncode == 0, quiet.stderr
    assert "parked" not in quiet.stderr


def test_the_run_command_documents_its_exit_statuses() -> None:
    text = invoke("run", "--help").output
    for status in ("0 ", "1 ", "4 ", "75 "):
        assert f"\n    {status}" in text, text


# -- 2. status and /healthz: unhealthy while alerts are parked or a destination keeps failing --

def _alert(db: Database, alert_id: str, status: str, created: datetime, *, attempts: int = 0,
           error: str | None = None, delivered: datetime | None = None,
           destination: str = "hook", post_id: int | None = None, report_id: str | None = None,
           priority: str = "normal") -> None:
    db.execute(
        "INSERT INTO alerts (id, post_id, rule, destination, status, priority, attempts,"
        " next_attempt_at, last_error, created_at, delivered_at, report_id)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [alert_id, post_id, "unhappy", destination, status, priority, attempts, to_iso(created),
         error, to_iso(created), to_iso(delivered) if delivered else None, report_id])


def test_a_destination_keeps_failing_after_three_failed_attempts_with_nothing_delivered(
    tmp_path: Path,
) -> None:
    config = load_config(write_setup(tmp_path, [], port=9), environ={})
    db = store.open_db(config.database)
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert health.read_snapshot(db, config).failing_destinations == []
    _alert(db, "a1", "pending", t0, attempts=1, error="could not reach (ConnectError)")
    assert health.read_snapshot(db, config).failing_destinations == []  # one blip
    _alert(db, "a2", "pending", t0 + timedelta(minutes=1), attempts=3,
           error="could not reach (ConnectError)")
    [failing] = health.read_snapshot(db, config).failing_destinations
    assert (failing.destination, failing.retrying, failing.since) == \
        ("hook", 1, "2026-11-20T10:01:00Z")
    assert "ConnectError" in failing.last_error
    # delivered before the streak: still failing; delivered after it began: the destination
    # works, a2 is one bad alert (it shows as parked once it runs out of attempts)
    _alert(db, "d1", "delivered", t0, delivered=t0 + timedelta(seconds=30))
    assert len(health.read_snapshot(db, config).failing_destinations) == 1
    _alert(db, "d2", "delivered", t0, delivered=t0 + timedelta(minutes=2))
    assert health.read_snapshot(db, config).failing_destinations == []


def test_status_and_healthz_fail_while_a_destination_keeps_failing_then_while_alerts_are_parked(
    tmp_path: Path, model: Classifier,
) -> None:
    # before: `health: ok` and /healthz 200 through all of this
    port = closed_port()
    path = write_setup(tmp_path, NEGATIVE[:2], port=port, attempts=10, wait=0.3, backoff=0.05)
    config = load_config(path, environ={})
    runtime = Runtime(config, preloaded=model)
    runtime.run_once()  # every attempt refused: 3 to 5 attempts each within 0.3 s
    runtime.close()
    now = datetime.now(UTC)
    code, body = health.healthz(config, now)
    assert code == 503 and body["status"] == "failing" and body["failing"] == []
    [bad] = body["failing_destinations"]
    assert (bad["destination"], bad["retrying"]) == ("hook", 2)
    assert "ConnectError" in bad["last_error"] and body["parked_alerts"] == 0
    out = CliRunner().invoke(status_command, ["-c", str(path)]).output
    assert "health: FAILING: destination hook keeps failing (2 alert(s) retrying" in out
    scraped = scrape_registry(config, with_process=False)
    assert scraped.get_sample_value("listener_healthy") == 0
    assert scraped.get_sample_value("listener_destination_failing_alerts",
                                    {"destination": "hook"}) == 2
    assert "destination hook: last error: webhook destination 'hook'" in out

    with FakeWebhookReceiver(secret=HOOK_SECRET) as receiver:  # the receiver is back
        receiver.stop()
        receiver.start(port)
        runtime = Runtime(config, preloaded=model)
        assert runtime.run_dispatch(wait_up_to=5) is not None
        runtime.close()
        assert len(receiver.deliveries) == 2
    code, body = health.healthz(config, datetime.now(UTC))
    assert (code, body["status"], body["failing_destinations"]) == (200, "ok", [])

    db = Database(config.database)
    db.execute("UPDATE alerts SET status = 'failed' WHERE rowid = (SELECT min(rowid) FROM alerts)")
    code, body = health.healthz(config, datetime.now(UTC))
    assert (code, body["parked_alerts"], body["failing_destinations"]) == (503, 1, [])
    out = CliRunner().invoke(status_command, ["-c", str(path)]).output
    assert "health: FAILING: 1 alert(s) parked as failed (`listener alerts list --status failed`" \
        in out


# -- 3. alerts list: the whole cause first, age and post, newest first or by priority ---------

CAUSE = ("webhook destination 'hook' (alert 0123456789abcdef0123456789abcdef): could not reach "
         "the receiver (ConnectError); check network and TLS")


def _listing_db(tmp_path: Path) -> tuple[Path, datetime]:
    path = write_setup(tmp_path, [], port=9)
    db = store.open_db(tmp_path / "listener.db")
    now = datetime.now(UTC)
    posts = [Post("reddit", f"t1_{i}", f"post {i}", now - timedelta(hours=i)) for i in range(3)]
    store.store_page(db, "imports", Page(posts), now)
    ids = {r["platform_id"]: r["id"] for r in db.query("SELECT id, platform_id FROM posts")}
    db.execute("INSERT INTO reports (id, kind, name, title, payload, created_at)"
               " VALUES ('r1', 'spike', 'surge', 'acme: 142 posts', '{}', ?)", [to_iso(now)])
    # 'aa…' sorts first by id (hash order), and is the oldest alert
    _alert(db, "aa" * 16, "failed", now - timedelta(hours=2, minutes=6), attempts=12,
           error=CAUSE, post_id=ids["t1_2"], priority="high")
    _alert(db, "bb" * 16, "failed", now - timedelta(minutes=3), attempts=1,
           error="slack: HTTP 404 no_service (the webhook was revoked)", post_id=ids["t1_0"],
           priority="low")
    _alert(db, "cc" * 16, "delivered", now - timedelta(minutes=30), delivered=now,
           post_id=ids["t1_1"], priority="normal")
    _alert(db, "dd" * 16, "failed", now - timedelta(seconds=40), attempts=2, error="timeout",
           report_id="r1", priority="normal")
    db.close()
    return path, now


def _rows(output: str) -> list[str]:
    """The listing's lines that start a row (the others continue a wrapped error)."""
    return [line for line in output.splitlines()[2:] if "  failed  " in line
            or "  delivered  " in line]


def test_alerts_list_leads_with_the_whole_cause_and_shows_age_and_post(tmp_path: Path) -> None:
    # before: error cut at 60 characters ("…could not reach the"), no age, no post, hash order
    config, _ = _listing_db(tmp_path)
    result = invoke("alerts", "list", "-c", str(config), "--status", "failed")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["last", "error", "age", "status", "destination", "tries", "post",
                                "rule", "id"]
    flat = " ".join(" ".join(result.output.split()).split())
    assert "could not reach the receiver (ConnectError); check network and TLS" in \
        " ".join(line[:56].strip() for line in lines[2:])
    assert "ConnectError" in flat
    rows = _rows(result.output)
    assert [r.split()[-1] for r in rows] == ["dd" * 6, "bb" * 6, "aa" * 6]  # newest first
    assert rows[0].split()[1:5] == ["40s", "failed", "hook", "2"]
    assert "report spike" in rows[0]
    assert "3m" in rows[1].split() and "reddit:t1_0" in rows[1]
    assert "2.1h" in rows[2].split() and "reddit:t1_2" in rows[2]
    everything = invoke("alerts", "list", "-c", str(config))
    assert [r.split()[-1] for r in _rows(everything.output)] == \
        ["dd" * 6, "bb" * 6, "cc" * 6, "aa" * 6]


def test_alerts_list_sorts_by_priority(tmp_path: Path) -> None:
    config, _ = _listing_db(tmp_path)
    result = invoke("alerts", "list", "-c", str(config), "--sort", "priority")
    assert result.exit_code == 0, result.output
    # high, then normal (newest first among them), then low
    assert [r.split()[-1] for r in _rows(result.output)] == \
        ["aa" * 6, "dd" * 6, "cc" * 6, "bb" * 6]
    empty = invoke("alerts", "list", "-c", str(config), "--status", "held")
    assert empty.output.strip() == "no held alerts"


# -- 4. alerts retry: unknown, ambiguous and not-failed ids are errors, named ------------------

def test_alerts_retry_names_unknown_ambiguous_and_not_failed_ids(tmp_path: Path) -> None:
    # before: "re-queued 0 alert(s)" and exit 0 for all of these
    config, _ = _listing_db(tmp_path)
    db = Database(tmp_path / "listener.db")
    _alert(db, "bbbb" + "0" * 28, "failed", datetime.now(UTC), attempts=12, error="x")
    unknown = invoke("alerts", "retry", "-c", str(config), "ee12")
    assert unknown.exit_code == 1
    assert "no alert matches ee12" in unknown.stderr and "re-queued 0" in unknown.stdout
    delivered = invoke("alerts", "retry", "-c", str(config), "cccc")
    assert delivered.exit_code == 1
    assert "alert cccc is delivered, not failed" in delivered.stderr
    ambiguous = invoke("alerts", "retry", "-c", str(config), "bb")
    assert ambiguous.exit_code == 1
    assert "bb is ambiguous: it matches bbbb00000000, bbbbbbbbbbbb" in ambiguous.stderr
    garbage = invoke("alerts", "retry", "-c", str(config), "not-an-id")
    assert garbage.exit_code == 1 and "'not-an-id' is not an alert id" in garbage.stderr
    assert {r["status"] for r in db.query("SELECT status FROM alerts WHERE id LIKE 'b%'")} == \
        {"failed"}  # nothing re-queued by mistake

    mixed = invoke("alerts", "retry", "-c", str(config), "AAAA", "ee12")
    assert mixed.exit_code == 1 and "re-queued 1 alert(s)" in mixed.stdout
    assert "1 of 2 id(s) not re-queued" in mixed.stderr
    assert db.execute("SELECT status, attempts FROM alerts WHERE id = ?",
                      ["aa" * 16]).fetchone() == ("pending", 1)
    everything = invoke("alerts", "retry", "-c", str(config))
    assert everything.exit_code == 0 and "re-queued 3 alert(s)" in everything.stdout
    again = invoke("alerts", "retry", "-c", str(config))
    assert again.exit_code == 0 and "no failed alerts to re-queue" in again.stdout


# -- 7. --log-level and --log-format after the subcommand --------------------------------------

def test_log_options_work_after_the_subcommand(tmp_path: Path, logging_state: None) -> None:
    # before: "No such option: --log-level" (exit 2)
    config = write_setup(tmp_path, [], port=9)
    result = invoke("summary", "-c", str(config), "--log-level", "DEBUG")
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == logging.DEBUG
    result = invoke("--log-level", "WARNING", "alerts", "list", "-c", str(config),
                    "--log-format", "json", "--log-level", "ERROR")
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == logging.ERROR
    assert type(logging.getLogger().handlers[0].formatter).__name__ == "JsonFormatter"


def test_log_options_after_registered_commands_in_a_real_process(tmp_path: Path) -> None:
    config = write_setup(tmp_path, [], port=9)
    env = cli_env("http://127.0.0.1:9/unused")
    status = run_cli(["status", "-c", str(config), "--log-level", "DEBUG"], env)
    assert status.returncode == 1 and "nothing has run yet" in status.stderr  # not a usage error
    migrate = run_cli(["db", "migrate", "--log-format", "json", "-c", str(config)], env)
    assert migrate.returncode == 0, migrate.stderr


# -- 8. backfill on a file source says so before drawing anything -----------------------------

def test_backfill_of_a_file_source_says_it_has_no_history_and_draws_nothing(
    tmp_path: Path,
) -> None:
    # before: an empty progress bar twice, then "cannot backfill"
    config = write_setup(tmp_path, NEGATIVE[:1], port=9)
    result = invoke("backfill", "--source", "imports", "--since", "2026-11-01", "-c", str(config))
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: source 'imports' (file) cannot backfill: a file source has no history to pull: "
        "every run already imports all of its files (lines appended and files added included); "
        "to import older posts, add them to a file it reads")
    assert not (tmp_path / "listener.db").exists()  # nothing opened, nothing drawn
    missing = invoke("backfill", "--source", "nope", "--since", "2026-11-01", "-c", str(config))
    assert missing.exit_code == 2 and "no enabled source 'nope'" in missing.output


# -- 9. library chatter stays at WARNING unless DEBUG was asked for -----------------------------

def test_library_info_lines_are_kept_out_unless_debug(logging_state: None) -> None:
    # before: APScheduler's INFO lines were 33 of the daemon's first 35
    for level, shown in (("INFO", {"WARNING"}), ("DEBUG", {"DEBUG", "INFO", "WARNING"}),
                         ("ERROR", set())):
        stream = io.StringIO()
        setup_logging(level, "text", stream)
        for name in ("apscheduler.scheduler", "urllib3.connectionpool", "httpx"):
            library = logging.getLogger(name)
            library.debug("DEBUG line")
            library.info("INFO line")
            library.warning("WARNING line")
        logging.getLogger("listener.scheduler").info("our own line, at info")
        out = stream.getvalue()
        for word in ("DEBUG", "INFO", "WARNING"):
            assert (out.count(f"{word} line") == 3) == (word in shown), (level, out)
        assert ("our own line, at info" in out) == (level != "ERROR")


# -- 11. check-config counts brands, spikes and digests too -----------------------------------

def test_check_config_summary_counts_brands_spikes_and_digests(tmp_path: Path) -> None:
    # before: "1 source(s), 1 rule(s), 1 destination(s) active"
    config = write_setup(tmp_path, [], port=9)
    config.write_text(config.read_text() + """\
brands:
  - {name: acme, query: acme}
  - {name: globex, query: globex}
spikes:
  - {name: surge, destinations: [hook]}
digests:
  - {name: daily, destinations: [hook]}
  - {name: weekly, every: weekly, destinations: [hook]}
""")
    result = invoke("check-config", str(config))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"{config.resolve()}: ok — 2 brand(s), 1 source(s), 1 rule(s), 1 spike detector(s), "
        "2 digest(s), 1 destination(s) active")
