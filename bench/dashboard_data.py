"""Synthetic data for bench/dashboard.py: N posts over 90 days, scores, alerts, statuses.

Seeded (numpy, seed 6) so every build is the same: 4 brands, 6 sources, 5 languages, words
from a Zipf-distributed vocabulary plus support words ("refund", "login", …) in negative
posts, sentiment 30 % negative / 45 % neutral / 25 % positive, urgency high mostly on
negative posts, follower counts log-normal. Everything is written through storage verbs in
pages of 10,000 rows, so the dashboard's triggers do the work they do in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from listener.core.models import Page, Post, Report, Score, to_iso
from storage import db as store
from storage import outbox
from storage.engine import Db
from storage.reports import enqueue_report
from storage.tx import immediate

BRANDS = ("acme", "globex", "initech", "umbrella")
SOURCES = (("x", "x"), ("reddit", "reddit"), ("mastodon", "mastodon"), ("bluesky", "bluesky"),
           ("appstore", "appstore"), ("googleplay", "googleplay"))
LANGS = ("en", "de", "fr", "es", "pt")
LANG_P = (0.7, 0.1, 0.08, 0.07, 0.05)
SUPPORT = ("refund", "login", "outage", "crash", "charged twice", "broken", "slow", "support",
           "waiting", "cancel", "password", "billing", "error", "down", "logged out")
HAPPY = ("love", "great", "thanks", "fast", "easy", "recommend", "awesome", "smooth")
PAGE = 10_000
DAYS = 90


def _vocabulary(rng: np.random.Generator, size: int = 6000) -> np.ndarray:
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "ve", "so", "pi", "da", "zo",
                          "ber", "lin", "mar", "tek", "qua", "ron", "sel", "xy", "gon"])
    words = {"".join(rng.choice(syllables, size=rng.integers(2, 4))) for _ in range(size * 2)}
    words.add("zyxel")  # one rare word the bench searches for
    return np.array(sorted(words)[:size])


def _texts(rng: np.random.Generator, sentiment: np.ndarray, vocab: np.ndarray) -> list[str]:
    n = len(sentiment)
    ranks = np.arange(1, len(vocab) + 1)
    weights = 1 / ranks
    words = rng.choice(vocab, size=(n, 12), p=weights / weights.sum())
    lengths = rng.integers(6, 13, size=n)
    support = rng.choice(np.array(SUPPORT), size=(n, 2))
    happy = rng.choice(np.array(HAPPY), size=n)
    out = []
    for i in range(n):
        body = list(words[i, : lengths[i]])
        if sentiment[i] == 0:
            body[1:1] = support[i]
        elif sentiment[i] == 2:
            body.insert(2, happy[i])
        out.append(f"@{BRANDS[i % 4]} " + " ".join(body))
    return out


def build(path: Path, total: int, now: datetime, log: Callable[[str], None] = print) -> None:
    """Create the benchmark database at ``path`` (written to a temporary name, then renamed)."""
    started = time.perf_counter()
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    db = store.open_db(tmp)
    db.execute("PRAGMA synchronous = OFF")  # a throw-away file: durability does not matter
    fill(db, total, now, log)
    db.close()
    tmp.rename(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    log(f"built {path} in {time.perf_counter() - started:.0f} s")


def fill(db: Db, total: int, now: datetime, log: Callable[[str], None] = print) -> None:
    """Write the posts, scores, alerts, statuses and reports into ``db`` (either engine)."""
    started = time.perf_counter()
    rng = np.random.default_rng(6)
    vocab = _vocabulary(rng)
    labels = ("negative", "neutral", "positive")
    for first in range(0, total, PAGE):
        n = min(PAGE, total - first)
        sentiment = rng.choice(3, size=n, p=(0.3, 0.45, 0.25))
        texts = _texts(rng, sentiment, vocab)
        seconds = rng.uniform(0, DAYS * 86400, size=n)
        brand = rng.integers(0, len(BRANDS), size=n)
        source = rng.integers(0, len(SOURCES), size=n)
        lang = rng.choice(len(LANGS), size=n, p=LANG_P)
        followers = rng.lognormal(5, 2, size=n).astype(int)
        posts = [
            Post(platform=SOURCES[source[i]][1], platform_id=str(first + i), text=texts[i],
                 created_at=now - timedelta(seconds=float(seconds[i])),
                 source=SOURCES[source[i]][0], brand=BRANDS[brand[i]], lang=LANGS[lang[i]],
                 author=f"u{first + i}", author_followers=int(followers[i]),
                 url=f"https://example.org/{first + i}")
            for i in range(n)
        ]
        store.store_page(db, "bench", Page(posts=posts), now)
        urgency = np.where(sentiment == 0, rng.beta(5, 2, size=n), rng.beta(1.2, 6, size=n))
        ids = db.execute("SELECT id FROM posts WHERE id > ? ORDER BY id", [first]).fetchall()
        store.save_scores(db, [
            (row[0], Score(labels[sentiment[i]], 0.8 if sentiment[i] == 0 else 0.1, 0.1,
                           0.8 if sentiment[i] == 2 else 0.1, float(urgency[i]), "default", "v1"),
             LANGS[lang[i]])
            for i, row in enumerate(ids)], now)
        if (first // PAGE) % 10 == 9:
            log(f"  {first + n:,} posts ({time.perf_counter() - started:.0f} s)")
    _alerts_and_statuses(db, rng, now)


def _alerts_and_statuses(db: Db, rng: np.random.Generator, now: datetime) -> None:
    """Alerts for 1 in 10 triage posts (a few parked as failed), 5 % handled, spike reports."""
    rows = db.execute("SELECT post_id, score_id FROM triage WHERE post_id % 10 = 0").fetchall()
    new = [outbox.NewAlert("unhappy", dest, pid, sid, f"bench:{pid}") for pid, sid in rows
           for dest in ("slack", "zendesk")]
    outbox.enqueue(db, new, [], now)
    with immediate(db):
        # (post, destination) instead of SQLite's rowid: the same spread on both engines
        db.execute("UPDATE alerts SET status = 'delivered'"
                   " WHERE (post_id + length(destination)) % 3 <> 0")
        db.execute("UPDATE alerts SET status = 'failed', last_error = '503 service unavailable'"
                   " WHERE (post_id + length(destination)) % 97 = 0")
        db.execute("INSERT INTO post_status (post_id, status, updated_at, by) SELECT post_id,"
                   " CASE WHEN post_id % 3 = 0 THEN 'not_relevant' ELSE 'handled' END, ?, 'bench'"
                   " FROM triage WHERE post_id % 20 = 1", [to_iso(now)])
    for day in range(0, DAYS, 9):
        start = (now - timedelta(days=day, hours=int(rng.integers(1, 20)))).replace(minute=0,
                                                                                   second=0)
        enqueue_report(db, Report(kind="spike", name="volume", title=f"spike {day}",
                                  brand=BRANDS[day % 4], window_start=start,
                                  window_end=start + timedelta(hours=1)), ["slack"], now)
