"""The crash variant of the delivery fault matrix: SIGKILL ``listener run --once`` between the
remote's effect and our record of it, restart, finish, count.

    row = crash_sink("jira", workdir)

The real CLI in a subprocess (file import → default model → rules → outbox → dispatch) alerts
one destination of the given type, configured the way a user would (secrets from the
environment), whose fake carries out the first create (the ticket exists, the mail is accepted)
and holds its answer. As soon as the remote object exists the process is SIGKILLed; the outbox
must show the attempt as started (``pending``, 1 attempt). Then ``listener run --once`` again,
until it exits, and what the remote shows is counted per alert id, as in the in-process matrix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlite_utils import Database

from tests.alerts.delivery_matrix import duplicates_cell, repeats
from tests.alerts.delivery_remotes import DEDUPED, Remote, remote
from tests.e2e import NEGATIVE, posts_jsonl, run_cli
from tests.fakes.faults import HoldFirstCreate, hold_first_mail

HOLD = 120.0  # seconds the fake holds the first answer: far longer than the kill takes
TIMEOUT = 60.0  # the sink's own timeout: it must still be waiting when the kill comes


@dataclass(frozen=True)
class CrashRow:
    sink: str
    alerts: int
    known: bool  # after the kill: the alert whose object exists is pending with 1 attempt
    objects: int
    delivered: int
    duplicates: int  # as the remote's users see them (the webhook receiver dedupes)
    raw_duplicates: int  # repeats that reached the remote
    lost: int
    seconds: float

    @property
    def deduped(self) -> bool:
        return self.sink in DEDUPED


def write_config(workdir: Path, far: Remote) -> dict[str, str]:
    """Config and posts in ``workdir``; returns the environment holding the secrets."""
    (workdir / "posts.jsonl").write_text(posts_jsonl(NEGATIVE), encoding="utf-8")
    env = {f"FM_{key.upper()}": str(far.settings[key]) for key in far.secrets}
    destination: dict[str, Any] = {**far.settings, "min_interval": 0}
    destination.update({key: {"$env": f"FM_{key.upper()}"} for key in far.secrets})
    config = {
        "storage": {"path": "listener.db"},
        "sources": [{"type": "file", "name": "imports", "brand": "acme", "path": "posts.jsonl"}],
        "rules": [{"name": "unhappy", "destinations": [destination["name"]],
                   "when": {"sentiment": ["negative"], "min_probability": 0.6}}],
        "destinations": [destination],
        "dispatch": {"once_max_wait": 10, "backoff_initial": 1, "max_attempts": 5},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                         encoding="utf-8")
    return env


def crash_sink(kind: str, workdir: Path) -> CrashRow:
    """Kill the CLI once between send and ack for one sink type, restart, count."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    with remote(kind, timeout=TIMEOUT) as far:
        if kind == "email":
            far.fake.stall = HOLD
            far.fake.faults = hold_first_mail()
        else:
            far.fake.faults = HoldFirstCreate(far.creates, HOLD)
        env = dict(os.environ, HF_HUB_OFFLINE="1", **write_config(workdir, far))
        env.pop("LISTENER_CONFIG", None)
        args = ["run", "--once", "-c", str(workdir / "config.yaml")]
        _kill_when_acted(far, [sys.executable, "-m", "listener", *args], env)
        [acted] = far.objects()  # exactly one object: the held create
        with closing(Database(workdir / "listener.db")) as db:
            row = db.execute("SELECT status, attempts FROM alerts WHERE id = ?",
                             [acted]).fetchone()
        again = run_cli(args, env)
        if again.returncode != 0:
            raise AssertionError(f"the restarted run failed: {again.stderr[-2000:]}")
        objects, seen = far.objects(), far.effective()
    with closing(Database(workdir / "listener.db")) as db:
        return CrashRow(
            sink=kind, alerts=_count(db), known=tuple(row) == ("pending", 1),
            objects=sum(objects.values()), delivered=_count(db, "delivered"),
            duplicates=repeats(seen), raw_duplicates=repeats(objects), lost=_lost(db, seen),
            seconds=time.monotonic() - started,
        )


def _kill_when_acted(far: Remote, command: list[str], env: dict[str, str]) -> None:
    """Run ``command``; SIGKILL it the moment the remote holds an object (180 s at most)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not far.objects():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the first create never reached the remote")
            time.sleep(0.01)
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup, as a power cut would
        proc.wait(timeout=30)


def _count(db: Database, status: str | None = None) -> int:
    sql, args = "SELECT count(*) FROM alerts", []
    if status is not None:
        sql, args = sql + " WHERE status = ?", [status]
    return int(db.execute(sql, args).fetchone()[0])


def _lost(db: Database, seen: Counter[str]) -> int:
    """Alerts that are not delivered, or that no remote object carries."""
    return sum(1 for r in db.query("SELECT id, status FROM alerts")
               if r["status"] != "delivered" or seen[r["id"]] == 0)


HEADER = ("sink", "alerts", "attempt known after kill", "remote objects", "delivered",
          "duplicates", "lost", "seconds")


def table(rows: list[CrashRow]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r.sink, r.alerts, "yes" if r.known else "NO", r.objects, r.delivered,
                 duplicates_cell(r.duplicates, r.raw_duplicates), r.lost, f"{r.seconds:.0f}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
