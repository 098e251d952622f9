"""storage.source_pauses on a real SQLite file: every paused source at once, as the pause verbs
of storage.db leave them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from storage.db import open_db
from storage.engine import Db
from storage.source_pauses import PAUSED_SQL, pause_source, paused_sources
from tests.pg_server import Server

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_no_source_was_ever_paused(any_db: Db) -> None:
    assert paused_sources(any_db) == {}


def test_paused_sources_with_the_time_each_resumes(any_db: Db) -> None:
    pause_source(any_db, "x-main", NOW + timedelta(hours=1), "rate limited", NOW)
    pause_source(any_db, "reddit", NOW + timedelta(days=3), "monthly cap", NOW)
    pause_source(any_db, "bluesky", NOW + timedelta(hours=1), "rate limited", NOW)
    pause_source(any_db, "bluesky", None, "", NOW)  # resumed: its row stays, unpaused
    assert paused_sources(any_db) == {"x-main": "2026-11-20T11:00:00Z",
                                      "reddit": "2026-11-23T10:00:00Z"}


def test_the_read_scans_only_the_small_source_state_table(db: Database) -> None:
    assert [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {PAUSED_SQL}")] == ["SCAN source_state"]



def test_the_read_scans_only_the_small_source_state_table_on_postgresql(
    pg_server: Server,
) -> None:
    db = open_db(pg_server.new_database())
    try:
        [(plan,)] = db.execute(f"EXPLAIN (FORMAT JSON) {PAUSED_SQL}").fetchall()
        top = plan[0]["Plan"]
        assert (top["Node Type"], top["Relation Name"], top.get("Plans")) == \
            ("Seq Scan", "source_state", None), plan
    finally:
        db.close()
