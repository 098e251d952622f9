"""Pages of posts stored side by side on PostgreSQL (storage.pg_pages), on a real server.

A page is held in flight (ids handed out, its first post inserted, not committed) by a test
connection inserting, uncommitted, a post the page also holds, which sorts after the page's
other posts: the page waits there for that transaction. Meanwhile another page commits, and
what must hold with pages in flight is checked: the other page is not held up; cross-post
links end as one writer would leave them; erasure and a promoted model's floor, which read
"every post up to this id", miss no post of the page.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.core.models import Page, Post, Score
from storage import db as store
from storage import feedback, privacy
from storage.engine import Db
from tests.pg_server import Server
from tests.storage.pg_threads import Held, in_thread, wait_for_lock

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TEXT = "the app crashed again after the update and support never answered"


def _post(n: int, *, brand: str, author: str = "dana", text: str | None = None,
          platform: str = "x", at: datetime = NOW) -> Post:
    return Post(platform=platform, platform_id=str(n), text=text or f"{TEXT} (#{n})",
                created_at=at, author=author, brand=brand, lang="en")


@pytest.fixture
def url(pg_server: Server) -> str:
    return pg_server.new_database()


@pytest.fixture
def conns(url: str) -> Iterator[Callable[[], Db]]:
    """Connections to the test's database, each closed at the end."""
    opened: list[Db] = []

    def open_one() -> Db:
        opened.append(store.open_db(url))
        return opened[-1]

    yield open_one
    for db in opened:
        db.close()


def _page_in_flight(conns: Callable[[], Db], post: Post, source: str) -> tuple[Db, Held]:
    """Start storing a page of ``post`` and a post that an open transaction of another
    connection holds: returns that connection (roll it back to let the page go on) and the
    page, waiting in flight."""
    key = f"zz-{post.platform_id}"  # after the page's own post in key order (letters > digits)
    lock = conns()
    lock.conn.execute("BEGIN")
    lock.execute("INSERT INTO posts (platform, platform_id, text, created_at, collected_at)"
                 " VALUES ('x', ?, 'held', ?, ?)", [key, NOW.isoformat(), NOW.isoformat()])
    blocker = Post(platform="x", platform_id=key, text="the post held elsewhere",
                   created_at=NOW, author="someone", brand=post.brand)
    page = in_thread(conns(), lambda db: store.store_page(
        db, source, Page(posts=[post, blocker]), NOW))
    wait_for_lock(lock, page.pid, "the page in flight")
    return lock, page


def _finish(lock: Db, page: Held) -> None:
    lock.conn.execute("ROLLBACK")
    page.thread.join(20)
    assert not page.thread.is_alive() and not page.errors, page.errors


def _store_now(db: Db, source: str, post: Post) -> int:
    """Store a page from a thread with a time limit: a page that waits for the one in flight
    (as every page did behind the one write lock) fails here instead of hanging."""
    other = in_thread(db, lambda conn: store.store_page(conn, source, Page(posts=[post]), NOW))
    other.thread.join(20)
    assert not other.thread.is_alive(), "the second page waited for the page in flight"
    assert not other.errors, other.errors
    return int(other.result[0])


def _row(db: Db, post: Post) -> dict[str, Any]:
    [row] = db.query("SELECT id, author, duplicate_of FROM posts WHERE platform = ?"
                     " AND platform_id = ?", [post.platform, post.platform_id])
    return row


def test_a_page_in_flight_holds_up_no_other_page_and_links_end_as_one_writer_leaves_them(
        conns: Callable[[], Db]) -> None:
    """The twin with the lower id commits last: its page links the earlier-committed twin,
    which could not see it, to itself."""
    watch = conns()
    first = _post(1, brand="alpha")
    lock, page = _page_in_flight(conns, first, "src-a")
    twin = _post(2, brand="beta", platform="reddit", text=first.text,
                 at=NOW + timedelta(minutes=20))
    assert _store_now(conns(), "src-b", twin) == 1
    assert _row(watch, twin)["duplicate_of"] is None  # the first is not visible yet
    _finish(lock, page)
    a, b = _row(watch, first), _row(watch, twin)
    assert a["id"] < b["id"]  # the case: the lower id committed last
    assert b["duplicate_of"] == a["id"] and a["duplicate_of"] is None
    # ... and where the later twin already points at an even earlier post, it stays there
    oldest = _post(3, brand="alpha", text="the third time: " + TEXT, at=NOW)
    assert store.store_page(watch, "src-c", Page(posts=[oldest]), NOW) == 1
    lock, page = _page_in_flight(conns, _post(4, brand="gamma", text=oldest.text), "src-d")
    late = _post(5, brand="beta", platform="reddit", text=oldest.text,
                 at=NOW + timedelta(minutes=5))
    assert _store_now(conns(), "src-b", late) == 1
    _finish(lock, page)
    assert _row(watch, late)["duplicate_of"] == _row(watch, oldest)["id"]
    assert _row(watch, _post(4, brand="gamma"))["duplicate_of"] == _row(watch, oldest)["id"]


def test_erasure_misses_no_post_of_a_page_in_flight(conns: Callable[[], Db]) -> None:
    """forget lists the author's posts outside any transaction: a page in flight then holds
    a lower id than a post listed, and is erased by the last transaction all the same."""
    watch = conns()
    held_post = _post(1, brand="alpha")
    lock, page = _page_in_flight(conns, held_post, "src-a")
    listed = _post(2, brand="beta")
    _store_now(conns(), "src-b", listed)
    forget = in_thread(conns(), lambda db: privacy.forget_author(db, "x", "dana", NOW,
                                                                  actor="cli:test"))
    wait_for_lock(watch, forget.pid, "forget")  # listed; now waiting for the write lock
    _finish(lock, page)
    forget.thread.join(20)
    assert not forget.errors, forget.errors
    assert _row(watch, held_post)["id"] < _row(watch, listed)["id"]
    assert _row(watch, held_post)["author"] is None and _row(watch, listed)["author"] is None
    assert privacy.count_author_posts(watch, "x", "dana") == 0


def test_a_promoted_models_floor_leaves_a_page_in_flight_above_it(
        conns: Callable[[], Db]) -> None:
    """The floor is the first unscored or recent post's id, less one: read while a page is
    in flight, it would pass over that page's posts, which no model would then score."""
    watch = conns()
    old = _post(1, brand="alpha", text="an old post, scored long ago, about the app")
    store.store_page(watch, "src-a", Page(posts=[old]), NOW - timedelta(days=2))
    score = Score(sentiment="negative", p_negative=0.8, p_neutral=0.1, p_positive=0.1,
                  urgency=0.2, model="m", model_version="v1")
    store.save_scores(watch, [(_row(watch, old)["id"], score, None)], NOW)
    held_post = _post(2, brand="alpha")
    lock, page = _page_in_flight(conns, held_post, "src-a")
    _store_now(conns(), "src-b", _post(3, brand="beta"))
    floor = in_thread(conns(), lambda db: feedback.rescore_floor(db, NOW - timedelta(hours=1)))
    wait_for_lock(watch, floor.pid, "the floor's read")
    _finish(lock, page)
    floor.thread.join(20)
    assert not floor.errors, floor.errors
    assert floor.result == [_row(watch, held_post)["id"] - 1]


def _at_once(url: str, pages: Callable[[random.Random], list[Page]], workers: int = 4
             ) -> list[int]:
    """Each of ``workers`` threads stores the pages ``pages`` makes from its own seeded random
    generator, on a connection of its own, all at once; the new-post counts of every page."""
    errors: list[BaseException] = []
    stored: list[int] = []

    def worker(seed: int) -> None:
        db = store.open_db(url)
        try:
            for page in pages(random.Random(seed)):
                stored.append(store.store_page(db, f"w{seed}", page, NOW))
        except BaseException as exc:  # the test reads it
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return stored


def test_pages_holding_each_others_keys_in_any_order_never_deadlock(
        url: str, conns: Callable[[], Db]) -> None:
    """Four workers store pages that overlap, each in its own order: every page inserts in key
    order, so none waits for a page that waits for it (PostgreSQL would abort one)."""
    offered: set[int] = set()

    def pages(rng: random.Random) -> list[Page]:
        chosen = [rng.sample(range(300), 120) for _ in range(12)]
        offered.update(k for keys in chosen for k in keys)
        return [Page(posts=[_post(k, brand="acme", author=f"a{k}") for k in keys])
                for keys in chosen]

    stored = _at_once(url, pages)
    watch = conns()
    # each post stored once, and counted as new by the one page that stored it
    assert watch.execute("SELECT count(*) FROM posts").fetchone()[0] == len(offered)
    assert sum(stored) == len(offered)


def test_links_of_pages_stored_at_once_are_each_posts_first_earlier_twin(
        url: str, conns: Callable[[], Db]) -> None:
    """Four workers store pages full of twins (few texts, few authors, three hours: pairs in
    and out of the window) at once: every post ends pointing at its first earlier twin by id,
    what one writer storing the posts in id order would have left."""
    texts = [f"{TEXT}, said for the {n}th time" for n in range(6)]

    def pages(rng: random.Random) -> list[Page]:
        seed = rng.random()
        return [Page(posts=[Post(platform=rng.choice(("x", "reddit")),
                                 platform_id=f"{seed}-{page}-{i}", text=rng.choice(texts),
                                 created_at=NOW + timedelta(minutes=rng.randint(0, 180)),
                                 author=rng.choice(("Dana", "dana", "lee", "kim")),
                                 brand="acme")
                            for i in range(60)])
                for page in range(10)]

    _at_once(url, pages)
    watch = conns()
    rows = watch.execute(
        "SELECT p.id, p.duplicate_of, (SELECT min(o.id) FROM posts o"
        " WHERE o.text_hash = p.text_hash AND o.id < p.id AND lower(o.author) = lower(p.author)"
        " AND abs(julianday(o.created_at) - julianday(p.created_at)) * 86400 <= ?) FROM posts p",
        [store.CROSSPOST_WINDOW_S]).fetchall()
    assert len(rows) == 4 * 10 * 60
    assert sum(1 for _, linked, _ in rows if linked is not None) > 1000
    assert [(i, linked) for i, linked, _ in rows] == [(i, first) for i, _, first in rows]


def _plans(db: Db) -> list[dict[str, Any]]:
    """Collect the plan of every statement ``db`` runs from now on, as PostgreSQL executed
    it (auto_explain, its reports sent to this client)."""
    import json

    plans: list[dict[str, Any]] = []

    def keep(diagnostic: Any) -> None:
        text = diagnostic.message_primary or ""
        if "plan:" in text:
            plans.append(json.loads(text.split("plan:", 1)[1]))

    import psycopg

    raw = db.conn.raw
    raw.add_notice_handler(keep)
    try:
        raw.execute("LOAD 'auto_explain'")
    except psycopg.errors.InsufficientPrivilege:
        pytest.skip("auto_explain is loaded by a superuser (LISTENER_TEST_POSTGRES_URL is not)")
    for setting in ("SET auto_explain.log_min_duration = 0",
                    "SET auto_explain.log_analyze = on", "SET auto_explain.log_format = json",
                    "SET client_min_messages = log"):
        raw.execute(setting)
    return plans


def _array_scans(node: dict[str, Any]) -> list[int]:
    """How many times each index scan for the page's text hashes (``= ANY`` of the array) ran."""
    own = [int(node["Actual Loops"])] if "ANY" in node.get("Index Cond", "") else []
    return own + [n for child in node.get("Plans", []) for n in _array_scans(child)]


def test_twins_are_found_by_hashing_when_statistics_say_posts_have_no_author(
    conns: Callable[[], Db]
) -> None:
    """A database that began with feeds (posts without authors), analyzed then: the planner
    expects no post of a page to have an author, and paired a page's posts with their twins
    by nested loops, scanning the index for the page's whole array of text hashes once per
    post (1,000 scans of 1,000 keys for a page of 1,000: ~200 ms instead of ~3). Now once,
    the pairs hashed, and the links are right."""
    db = conns()
    store.store_page(db, "rss", Page([
        Post("rss", f"r{i}", f"a feed item long enough to be hashed, number {i}", NOW,
             source="rss") for i in range(20_000)]), NOW)
    db.execute("ANALYZE posts")
    plans = _plans(db)
    store.store_page(db, "x", Page([
        _post(i, brand="acme", author=f"u{i % 500}", text=f"{TEXT}, said {i % 500}")
        for i in range(1000)]), NOW)
    pairing = [p for p in plans if p["Query Text"].startswith("WITH mine AS")]
    assert len(pairing) == 1
    assert _array_scans(pairing[0]["Plan"]) == [1], pairing[0]["Plan"]
    assert db.execute("SELECT current_setting('enable_nestloop')").fetchone()[0] == "on"
    linked = db.execute("SELECT count(*) FROM posts WHERE duplicate_of IS NOT NULL").fetchone()
    assert linked[0] == 500
