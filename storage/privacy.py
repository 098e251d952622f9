"""Personal data (issue 18): forgetting one person (``listener forget``) and erasing the text of
old posts (``storage.retention_days``), keeping the counts.

To *erase* a post is to remove what it says and who said it while it still counts: the trends,
rollups, scores, statuses and incident sizes stay as they were. Both verbs work in batches of
posts, one short write transaction each (a person with 100,000 posts never holds the write lock
for long), and record one audit entry (``privacy.forget``, ``privacy.retention``) in the
transaction of their last batch, with what they erased. A run cut short (an error, a stop) still
records what it did, marked ``incomplete``; running it again finishes the work (both verbs are
idempotent). Matching an author is ``lower(author) = lower(?)`` on one platform, as the
cross-post links compare authors (ASCII case only, on both engines).

What is stored about a person, and what erasure does, column by column:

* ``posts`` — ``text``: replaced by :data:`ERASED` (NOT NULL; a fixed marker, so the dashboard,
  a late alert and the search show "[erased]", and the retention run can tell erased posts);
  ``author``, ``author_followers``, ``url`` (names the author on most platforms), ``raw`` (the
  platform's whole record) and ``text_hash`` (derived from the text; NULL also keeps erased
  posts out of cross-post links): NULL. Kept: ``platform`` and ``platform_id`` (the key: the
  post is not collected again, and its counts stay its own), ``source``, ``brand``, ``kind``,
  ``lang``, ``rating``, ``created_at``, ``collected_at``, ``thread`` (a conversation id) and
  ``duplicate_of`` (a link between two erased posts of one author) — none of them names or
  quotes the person.
* ``posts_fts`` (SQLite) / ``triage.search_vector`` (PostgreSQL): the search index of queued
  posts' text; the triggers on ``UPDATE OF text`` take the old words out and index the marker.
  On SQLite, ``forget`` then merges the index's segments (FTS5 keeps deleted words in old
  segments until a merge), and both verbs run with ``PRAGMA secure_delete`` so freed space in
  the file is zeroed. ``triage.followers`` (a copy of ``author_followers``): 0; its ``rank``
  and scores stay, so the queue's order does not change.
* ``scores``, ``post_hours``/``post_days`` (and ``_extra``), ``post_extra_brands``,
  ``post_status`` (a status and a team member's name), ``feedback`` (labels and the reviewer):
  kept — numbers and the team's own work, nothing the person wrote. Scores the rules stage has
  not looked at yet are marked evaluated, so no new alert is raised about an erased post;
  :func:`storage.feedback.training_rows` leaves erased posts out of training files.
* ``post_notes``: the team's notes about the post (they may quote or name the person):
  deleted. ``post_vectors``: sentence embeddings of the text, with the author: deleted.
* ``incident_posts.author``: replaced by a pseudonym (``erased:`` and random hex), one per
  person per run, so an incident's count of distinct customers stays right when it is
  recounted. ``incidents`` (counts, a centroid averaged over many posts): kept.
* ``alerts``: no message body is stored (a message is rendered from the post when it is sent,
  and then shows the marker). Alerts about an erased post not sent yet (pending, failed, held)
  are suppressed, with the reason in ``last_error``; a ``last_error`` already there (a
  destination's answer may echo the message) becomes :data:`ERASED`, as does every
  ``deliveries.error`` of those alerts. Messages already delivered live in the destination
  (Slack, Jira …), out of our reach.
* ``reports``: a digest or spike's payload holds counts, words counted over many posts and post
  ids (its example posts are read from ``posts`` when sent); an incident's first message names
  its customers (the "Customers so far" fact, ``numbers.authors``). ``forget`` replaces the
  handle wherever it appears in a report's title or payload; the retention run drops the names
  from incident reports older than its cutoff. ``chart_png`` draws counts: kept.
* ``replies`` (what the team wrote back to the post, through the platform: it may name or
  quote the person): ``text`` becomes :data:`ERASED`, a ``last_error`` too, ``remote_url``
  (a link that may carry the post's title) NULL; a reply not sent yet is cancelled.
  ``remote_id`` and the team member's name stay.
* ``rejects`` (``platform:id`` or file position, and an error message, scrubbed), ``runs``,
  ``cursors``, ``source_state``, ``leases``, ``workers``: operational, hold neither text nor
  authors: kept. ``users``, ``web_sessions``: the team, not the people posts are about.
* ``audit_log``: only ever added to. A forget entry holds the platform and the SHA-256 of the
  lower-cased handle — never the handle — so "was this person forgotten?" can be answered by
  hashing the handle (a pseudonym: anyone with a guess can check it, which is the point).

The retention run is cheap when there is nothing to do: its audit entry records the cutoff and
the highest post id it covered (``through_id``), so the next run looks only at posts stored
since then (by id) and at posts dated between the two cutoffs (by ``created_at``), never again
at the millions it erased before. Without such an entry it reads every post once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from threading import Event
from typing import Any

from listener.core.models import parse_iso, to_iso
from storage import audit
from storage.engine import SQLITE, Db, database_errors, dialect
from storage.outbox import FAILED, HELD, PENDING, SUPPRESSED
from storage.tx import immediate

ERASED = "[erased]"
"""What an erased post's text (and any error text that may have quoted it) becomes."""
NOT_SENT = "not sent: the author's personal data was erased"
BATCH = 5000
"""Posts per write transaction."""
FORGET, RETENTION = "privacy.forget", "privacy.retention"
RETENTION_TARGET = "retention"
RETENTION_EVERY = timedelta(hours=23)
"""A retention run is due when the last complete one is this old: a day, less the hour between
two checks of the daemon's job, so the daily run does not drift later each day."""
_UNSENT = (PENDING, FAILED, HELD)
# replies (storage.replies, migration 014) not sent yet, and what they become: a reply being
# sent right now is stopped too (its sender records it sent if it got there)
_UNSENT_REPLIES = ("awaiting_approval", "pending", "sending", "failed")
_CANCELLED = "cancelled"
_ALIAS = "erased:"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# the incident reports that name their customers (alerts.incidents.KIND; storage cannot import
# alerts): their fact and their numbers' key
_INCIDENT_KIND, _CUSTOMERS_FACT, _AUTHORS_KEY = "incident", "Customers so far", "authors"


@dataclass(frozen=True)
class Erased:
    """What one run erased (what its audit entry says)."""

    posts: int = 0
    alerts: int = 0  # alerts about those posts stopped or their error text blanked
    notes: int = 0
    vectors: int = 0
    incident_members: int = 0  # incident_posts rows given a pseudonym
    reports: int = 0  # report titles or payloads scrubbed
    replies: int = 0  # the team's replies to those posts erased (and stopped, if unsent)

    def __add__(self, other: Erased) -> Erased:
        return Erased(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def counts(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class RetentionMark:
    """The last complete retention run: when, its cutoff, the highest post id it covered."""

    at: str
    cutoff: str
    through_id: int


def author_digest(author: str) -> str:
    """The SHA-256 (hex) of the lower-cased handle: how the audit log names a forgotten person."""
    return hashlib.sha256(author.strip().lower().encode()).hexdigest()


def _key(author: str) -> str:
    """The handle as ``lower()`` writes it on both engines (ASCII letters only)."""
    return author.strip().translate(_ASCII_LOWER)


_AUTHOR_POSTS = "FROM posts WHERE platform = ? AND lower(author) = ?"


def count_author_posts(db: Db, platform: str, author: str) -> int:
    """How many stored posts ``author`` has on ``platform`` (what ``forget`` would erase)."""
    return int(db.execute(f"SELECT count(*) {_AUTHOR_POSTS}",  # noqa: S608 (constant)
                          [platform, _key(author)]).fetchone()[0])


def count_older_than(db: Db, cutoff: datetime) -> int:
    """How many posts dated before ``cutoff`` still have their text."""
    return int(db.execute("SELECT count(*) FROM posts WHERE created_at < ? AND text <> ?",
                          [to_iso(cutoff), ERASED]).fetchone()[0])


def forget_author(db: Db, platform: str, author: str, now: datetime, *, actor: str,
                  batch: int = BATCH) -> Erased:
    """Erase every post of ``author`` on ``platform`` (see the module docstring for what that
    does), scrub the handle from reports, and audit it as ``actor``; returns the counts.

    The author's posts are listed first, outside any transaction (one read of ``posts``), then
    erased ``batch`` at a time; the last transaction also erases the author's posts the listing
    did not see (stored meanwhile, or, on PostgreSQL, in a page still in flight then, whose
    ids may be below the listing's: storage.pg_pages), scrubs the reports and records the audit
    entry. It runs under the write lock, with no page in flight."""
    handle = author.strip()
    if not handle:
        raise ValueError("name the author (their handle on the platform)")
    key = _key(handle)
    top = int(db.execute("SELECT coalesce(max(id), 0) FROM posts").fetchone()[0])
    ids = [int(r[0]) for r in db.execute(
        f"SELECT id {_AUTHOR_POSTS} AND id <= ? ORDER BY id",  # noqa: S608 (constant)
        [platform, key, top]).fetchall()]
    digest = author_digest(handle)
    target = f"author:{platform}:{digest}"
    detail: dict[str, Any] = {"platform": platform, "author_sha256": digest}
    run = _Run(db, actor, FORGET, now, target, detail)
    with _secure_delete(db), run:
        for start in range(0, len(ids), batch):
            with run.batch():
                run.add(_erase(db, ids[start:start + batch], now, run.aliases, run.replies))
        with run.batch():
            # every post erased so far has lost its author: what still matches is late
            late = [int(r[0]) for r in db.execute(
                f"SELECT id {_AUTHOR_POSTS} ORDER BY id",  # noqa: S608 (constant)
                [platform, key]).fetchall()]
            for start in range(0, len(late), batch):
                run.add(_erase(db, late[start:start + batch], now, run.aliases, run.replies))
            run.add(Erased(reports=_scrub_handle(db, handle)))
            if run.total.posts and dialect(db) == SQLITE:
                # FTS5 keeps deleted words in its older segments until they merge: merge now
                db.execute("INSERT INTO posts_fts (posts_fts) VALUES ('optimize')")
            run.finish()
    return run.total


# posts dated before the cutoff (?2), not erased yet: stored since the last run (ids above ?1)
_NEW_SINCE = ("SELECT id FROM posts WHERE id > ? AND created_at < ? AND text <> ?"
              " ORDER BY id LIMIT ?")
# ... or known to it and dated between its cutoff and this one, paged by (created_at, id)
_DATED_BETWEEN = (
    "SELECT id, created_at FROM posts WHERE created_at >= ? AND created_at < ? AND id <= ?"
    " AND (created_at > ? OR (created_at = ? AND id > ?)) AND text <> ?"
    " ORDER BY created_at, id LIMIT ?"
)


def erase_older_than(db: Db, cutoff: datetime, now: datetime, *, actor: str,
                     batch: int = BATCH, beat: Callable[[], None] | None = None,
                     stop: Event | None = None) -> Erased:
    """Erase every post dated before ``cutoff`` that is not erased yet, and the customers'
    names in incident reports written before it; audited as ``actor``. ``beat`` is called
    after each batch (a stage's progress mark); a set ``stop`` ends the run between two
    batches (recorded as incomplete; the next run goes on)."""
    edge = to_iso(cutoff)
    mark = last_retention(db)
    run = _Run(db, actor, RETENTION, now, RETENTION_TARGET, {"cutoff": edge})

    def tick() -> bool:
        if beat is not None:
            beat()
        return stop is None or not stop.is_set()

    with _secure_delete(db), run:
        if mark is not None and mark.cutoff < edge:
            at, after = mark.cutoff, 0
            while True:
                with run.batch():
                    rows = db.execute(_DATED_BETWEEN, [mark.cutoff, edge, mark.through_id, at,
                                                       at, after, ERASED, batch]).fetchall()
                    if not rows:
                        break
                    run.add(_erase(db, [int(r[0]) for r in rows], now, run.aliases, run.replies))
                at, after = str(rows[-1][1]), int(rows[-1][0])
                if not tick():
                    return run.total
        after = mark.through_id if mark is not None else 0
        while True:
            with run.batch():
                rows = db.execute(_NEW_SINCE, [after, edge, ERASED, batch]).fetchall()
                if not rows:
                    # under the write lock: every post up to the highest id is now covered
                    through = int(db.execute("SELECT coalesce(max(id), 0) FROM posts")
                                  .fetchone()[0])
                    run.add(Erased(reports=_scrub_incident_names(db, edge)))
                    run.detail["through_id"] = max(through, after)
                    run.finish()
                    return run.total
                run.add(_erase(db, [int(r[0]) for r in rows], now, run.aliases, run.replies))
            after = int(rows[-1][0])
            if not tick():
                return run.total
    return run.total  # pragma: no cover - the loop returns (mypy cannot tell)


def last_retention(db: Db) -> RetentionMark | None:
    """The newest complete retention run, from its audit entry (among the last few: runs cut
    short are rare); None before the first, and a full run then follows."""
    for row in db.execute(
            "SELECT at, detail FROM audit_log WHERE target = ? AND action = ?"
            " ORDER BY at DESC, id DESC LIMIT 50", [RETENTION_TARGET, RETENTION]).fetchall():
        detail = json.loads(row[1]) if row[1] else {}
        if "through_id" in detail and "cutoff" in detail:
            return RetentionMark(str(row[0]), str(detail["cutoff"]), int(detail["through_id"]))
    return None


def retention_due(db: Db, now: datetime, every: timedelta = RETENTION_EVERY) -> bool:
    """Whether the daily run should go now: no complete run within ``every`` (or the last one
    is dated well ahead of ``now``: a clock set back must not stop retention for that long)."""
    mark = last_retention(db)
    if mark is None:
        return True
    age = now - parse_iso(mark.at)
    return age >= every or age < -timedelta(hours=1)


# -- one batch -----------------------------------------------------------------------------------


def _erase(db: Db, ids: Sequence[int], now: datetime, aliases: dict[str, str],
           replies: bool) -> Erased:
    """Erase the posts ``ids`` and what hangs off them, in the caller's transaction
    (``replies``: whether the database has the replies table)."""
    if not ids:
        return Erased()
    marks = ", ".join("?" * len(ids))  # placeholders only; the ids are bound
    unsent = ", ".join("?" * len(_UNSENT))
    unsent_r = ", ".join("?" * len(_UNSENT_REPLIES))
    posts = db.execute(
        "UPDATE posts SET text = ?, author = NULL, author_followers = NULL, url = NULL,"  # noqa: S608
        f" raw = NULL, text_hash = NULL WHERE id IN ({marks})", [ERASED, *ids]).rowcount
    db.execute(f"UPDATE triage SET followers = 0 WHERE post_id IN ({marks})"  # noqa: S608
               " AND followers <> 0", list(ids))
    db.execute(f"UPDATE scores SET rules_at = ? WHERE post_id IN ({marks})"  # noqa: S608
               " AND rules_at IS NULL", [to_iso(now), *ids])
    db.execute(
        "UPDATE deliveries SET error = ? WHERE error IS NOT NULL AND alert_id IN"  # noqa: S608
        f" (SELECT id FROM alerts WHERE post_id IN ({marks}))", [ERASED, *ids])
    alerts = db.execute(
        f"UPDATE alerts SET status = CASE WHEN status IN ({unsent}) THEN ? ELSE status END,"  # noqa: S608
        f" last_error = CASE WHEN status IN ({unsent}) THEN ? ELSE ? END"
        f" WHERE post_id IN ({marks}) AND (status IN ({unsent}) OR last_error IS NOT NULL)",
        [*_UNSENT, SUPPRESSED, *_UNSENT, NOT_SENT, ERASED, *ids, *_UNSENT]).rowcount
    notes = db.execute(f"DELETE FROM post_notes WHERE post_id IN ({marks})",  # noqa: S608
                       list(ids)).rowcount
    vectors = db.execute(f"DELETE FROM post_vectors WHERE post_id IN ({marks})",  # noqa: S608
                         list(ids)).rowcount
    members = db.execute(
        f"SELECT incident_id, post_id, author FROM incident_posts WHERE post_id IN ({marks})"  # noqa: S608
        " AND author IS NOT NULL", list(ids)).fetchall()
    answered = 0
    if replies:
        answered = db.execute(
            f"UPDATE replies SET text = ?, remote_url = NULL, last_error = CASE WHEN"  # noqa: S608
            f" last_error IS NULL THEN NULL ELSE ? END, status = CASE WHEN status IN ({unsent_r})"
            f" THEN ? ELSE status END WHERE post_id IN ({marks})",
            [ERASED, ERASED, *_UNSENT_REPLIES, _CANCELLED, *ids]).rowcount
    renamed = [(aliases.setdefault(_key(str(author)), _ALIAS + secrets.token_hex(6)),
                incident, post) for incident, post, author in members
               if not str(author).startswith(_ALIAS)]
    if renamed:
        db.conn.executemany("UPDATE incident_posts SET author = ? WHERE incident_id = ?"
                            " AND post_id = ?", renamed)
    return Erased(posts=max(int(posts), 0), alerts=max(int(alerts), 0),
                  notes=max(int(notes), 0), vectors=max(int(vectors), 0),
                  incident_members=len(renamed), replies=max(int(answered), 0))


# -- reports -------------------------------------------------------------------------------------


def _scrub_handle(db: Db, handle: str) -> int:
    """Replace ``handle`` (as a whole word, any case) in every report's title and payload
    strings by :data:`ERASED`; returns the reports changed. Reads every report whose text
    contains it (a scan of ``reports``: a forget is rare, reports are few)."""
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", _key(handle)) + "%"
    word = re.compile(r"(?<![\w])" + re.escape(handle) + r"(?![\w])", re.IGNORECASE)
    rows = db.execute("SELECT id, title, payload FROM reports WHERE lower(payload) LIKE ?"
                      " ESCAPE '\\' OR lower(title) LIKE ? ESCAPE '\\'",
                      [pattern, pattern]).fetchall()
    changed = 0
    for report_id, title, payload in rows:
        new_title = word.sub(ERASED, str(title))
        decoded = json.loads(payload)
        scrubbed = _replace(decoded, word)
        if new_title != title or scrubbed != decoded:
            db.execute("UPDATE reports SET title = ?, payload = ? WHERE id = ?",
                       [new_title, json.dumps(scrubbed, ensure_ascii=False), report_id])
            changed += 1
    return changed


def _replace(value: Any, word: re.Pattern[str]) -> Any:
    """``value`` (decoded JSON) with ``word`` replaced in every string (keys are ours)."""
    if isinstance(value, str):
        return word.sub(ERASED, value)
    if isinstance(value, dict):
        return {k: _replace(v, word) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, word) for v in value]
    return value


def _scrub_incident_names(db: Db, edge: str) -> int:
    """Drop the customers' handles from incident reports written before ``edge``; a report
    scrubbed once no longer matches (the ``reports(kind, created_at)`` index finds the rest)."""
    rows = db.execute(
        "SELECT id, payload FROM reports WHERE kind = ? AND created_at < ? AND payload LIKE ?",
        [_INCIDENT_KIND, edge, f'%"{_AUTHORS_KEY}"%']).fetchall()
    changed = 0
    for report_id, text in rows:
        payload = json.loads(text)
        numbers = payload.get("numbers")
        if not isinstance(numbers, dict) or _AUTHORS_KEY not in numbers:
            continue
        numbers.pop(_AUTHORS_KEY)
        payload["facts"] = [[k, ERASED] if k == _CUSTOMERS_FACT else [k, v]
                            for k, v in payload.get("facts", [])]
        db.execute("UPDATE reports SET payload = ? WHERE id = ?",
                   [json.dumps(payload, ensure_ascii=False), report_id])
        changed += 1
    return changed


# -- runs, audited -------------------------------------------------------------------------------


@dataclass
class _Run:
    """One audited run: its counts, and its entry — recorded by :meth:`finish` in the last
    batch's transaction or, when the run ends early (an error, a stop), as ``incomplete`` with
    what the committed batches did."""

    db: Db
    actor: str
    action: str
    now: datetime
    target: str
    detail: dict[str, Any]
    total: Erased = Erased()  # so far, the open transaction's batch included
    saved: Erased = Erased()  # what committed
    aliases: dict[str, str] = field(default_factory=dict)  # handle → pseudonym (one per person)
    recorded: bool = False
    replies: bool = False  # whether the database has the replies table (migration 014)

    def __post_init__(self) -> None:
        self.replies = "replies" in self.db.table_names()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One write transaction of the run."""
        with immediate(self.db):
            yield
        self.saved = self.total

    def add(self, erased: Erased) -> None:
        self.total += erased

    def finish(self) -> None:
        """The entry, in the open (last) transaction."""
        self._record({**self.detail, **self.total.counts()})

    def _record(self, detail: Mapping[str, Any]) -> None:
        audit.record(self.db, self.actor, self.action, self.now, target=self.target,
                     detail=detail)
        self.recorded = True

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None and self.recorded:
            return
        if not any(self.saved.counts().values()):
            return
        # what committed is audited too; a database failing now fails this entry only
        detail = {k: v for k, v in self.detail.items() if k != "through_id"}
        with suppress(*database_errors()):
            self._record({**detail, **self.saved.counts(), "incomplete": True})


@contextmanager
def _secure_delete(db: Db) -> Iterator[None]:
    """SQLite overwrites what it frees with zeros while this lasts (the connection's setting
    is put back afterwards); PostgreSQL needs ``VACUUM`` for that (README)."""
    if dialect(db) != SQLITE:
        yield
        return
    before = int(db.execute("PRAGMA secure_delete").fetchone()[0])
    db.execute("PRAGMA secure_delete = 1")
    try:
        yield
    finally:
        with suppress(*database_errors()):
            db.execute(f"PRAGMA secure_delete = {1 if before else 0}")
