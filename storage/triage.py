"""The triage queue: posts waiting for a person to read them, how they are filtered and ranked,
and what the person decided (``post_status``).

The queue reads ``triage`` (migration 005): one row per post whose current score is negative or
help-seeking, or was made by a model that does not understand the post's language (migration
009: ``supported`` = 0, a person must read it), carrying everything the queue filters and sorts
on, so no query joins a million scores. Filters are optional; each adds a constant SQL clause
with bound values. A status set here is copied into ``triage`` by a trigger, which is why the
verb that writes it lives next to the queue that filters on it. (This was the first part of
``storage/dashboard.py``, named for the screen; the module is now named for what it holds.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from listener.core.models import to_iso
from storage import search
from storage.engine import POSTGRESQL, Db, dialect, pick
from storage.tx import immediate

# a team's path for a post: nobody has it yet, someone has it, answered, done or not for us
STATUSES = ("new", "assigned", "replied", "handled", "not_relevant")
ANSWERED = ("replied", "handled", "not_relevant")  # the customer got a response (or needs none)
RESOLVED = ("handled", "not_relevant")
OPEN = ("new", "assigned", "replied")  # the queue's "open" view: still someone's work
COUNT_CAP = 1_000  # the queue counts matches up to here, then says "1,000+"


@dataclass(frozen=True)
class Waiting:
    """How long customers have waited counts in the queue's order (issue 18).

    A post nobody has answered yet (``new`` or ``assigned``) climbs as it waits: its rank
    (urgency x reach) is multiplied by 1 + (time waited / its brand's first-response target),
    in steps of a quarter target, up to 3x at twice the target — an urgent post from a big
    account still leads, but a small one that has waited past the target overtakes a fresh
    one. Past ``stale_after`` (a week by default) a post sinks (x 0.25): an answer that late
    rarely helps, and it should not sit at #2 for days. Answered and resolved posts keep their
    rank. Steps instead of a smooth curve: the order compares the post's timestamp text with
    precomputed thresholds (cheap per row on both engines) instead of parsing dates per row.
    """

    now: datetime
    target: timedelta = timedelta(hours=4)
    brand_targets: Mapping[str, timedelta] = field(default_factory=dict)
    stale_after: timedelta = timedelta(days=7)

    def target_for(self, brand: str | None) -> timedelta:
        return self.brand_targets.get(brand or "", self.target)

    def overdue(self, brand: str | None, created_at: datetime, status: str) -> bool:
        """Unanswered for longer than the brand's target (the queue highlights it)."""
        return status in ("new", "assigned") and self.now - created_at > self.target_for(brand)


STEPS = 8  # quarter-target steps up to twice the target: factors 1.25 … 3.0


def _steps(w: Waiting, target: timedelta) -> tuple[str, list[Any]]:
    """CASE arms of one target's factor: waited at least k quarters → 1 + k/4."""
    arms, params = [], []
    for k in range(STEPS, 0, -1):
        arms.append(f"WHEN t.created_at <= ? THEN {1 + k / 4}")
        params.append(to_iso(w.now - target * k / 4))
    return " ".join(arms), params


def _priority(w: Waiting | None) -> tuple[str, list[Any]]:
    """The queue's sort key (see :class:`Waiting`) and its bound values."""
    if w is None:
        return "t.rank", []
    params: list[Any] = [to_iso(w.now - w.stale_after)]
    brands = []
    for brand, target in sorted(w.brand_targets.items()):
        arms, values = _steps(w, target)
        brands.append(f"WHEN t.brand = ? THEN CASE {arms} ELSE 1.0 END")
        params += [brand, *values]
    arms, values = _steps(w, w.target)
    params += values
    factor = (f"CASE WHEN t.status NOT IN ('new', 'assigned') THEN 1.0"
              f" WHEN t.created_at < ? THEN 0.25 {' '.join(brands)}"
              f" ELSE CASE {arms} ELSE 1.0 END END")
    return f"t.rank * ({factor})", params


@dataclass(frozen=True)
class _Band:
    """Rows whose waiting factor is one constant: the clause that selects them (on ``triage
    t``), its bound values, and the factor."""

    clause: str
    params: list[Any]
    factor: float


def _bands(w: Waiting, statuses: tuple[str, ...]) -> list[_Band]:
    """The queue split where :class:`Waiting`'s factor is constant, one status at a time (an
    index on status then rank serves each in rank order): an answered status (1.0); an
    unanswered one stale (0.25), then per first-response target (each brand that has its own,
    and every other brand) its quarter-target steps of time waited: 3.0 at twice the target or
    more, 1 + k/4 from k to k+1 quarters, 1.0 under one quarter. :func:`_page_ids` merges
    them."""
    stale = to_iso(w.now - w.stale_after)
    targets = sorted(w.brand_targets.items())
    groups: list[tuple[str, list[Any], timedelta]] = [
        (" AND t.brand = ?", [brand], target) for brand, target in targets]
    names = [brand for brand, _ in targets]
    others = (f" AND (t.brand IS NULL OR t.brand NOT IN ({', '.join('?' * len(names))}))"
              if names else "")
    groups.append((others, names, w.target))
    bands = []
    for status in statuses:
        if status not in ("new", "assigned"):
            bands.append(_Band("t.status = ?", [status], 1.0))
            continue
        bands.append(_Band("t.status = ? AND t.created_at < ?", [status, stale], 0.25))
        for who, whose, target in groups:
            base, values = f"t.status = ? AND t.created_at >= ?{who}", [status, stale, *whose]
            cuts = [to_iso(w.now - target * k / 4) for k in range(STEPS + 1)]  # cuts[0]: now
            bands.append(_Band(f"{base} AND t.created_at <= ?", [*values, cuts[STEPS]],
                               1 + STEPS / 4))
            bands += [_Band(f"{base} AND t.created_at > ? AND t.created_at <= ?",
                            [*values, cuts[k + 1], cuts[k]], 1 + k / 4)
                      for k in range(STEPS - 1, 0, -1)]
            bands.append(_Band(f"{base} AND t.created_at > ?", [*values, cuts[1]], 1.0))
    return bands


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows; None means "any". ``status`` 'new' includes posts never touched."""

    start: datetime | None = None
    end: datetime | None = None
    brand: str | None = None
    source: str | None = None
    sentiment: str | None = None
    lang: str | None = None
    status: str | None = "new"  # one of STATUSES, or 'open' (any of OPEN)
    assignee: str | None = None  # the posts one person has (a user's name): "mine"
    q: str | None = None  # the brand query language: words, "phrases", OR, -x, prefix* (storage.search)
    incident: str | None = None  # the posts of one incident (the link in its alert)
    unsupported: bool = False  # only posts scored by a model that does not know their language
    waiting: Waiting | None = None  # order by rank and time waited (None: rank alone)


# The text search: SQLite's FTS5 index of the queue's posts, or PostgreSQL's search document
# on the queue row itself, queried with the search compiled for each (storage/search.py: the
# brand query language as a quoted FTS5 expression and its tsquery); the two engines index
# text differently, so the clauses cannot be one.
_SEARCH_SQLITE = "t.post_id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?)"
_SEARCH_PG = "t.search_vector @@ to_tsquery('simple', search_fold(?))"
# the queue's order after its priority; post_id breaks ties, so pages neither repeat nor skip
# a row on either engine
_TIES = "t.created_at DESC, t.post_id DESC"


def _where(db: Db, f: QueueFilter) -> tuple[str, list[Any]]:
    """The filter's clauses on ``triage t``; a search that cannot be read raises
    :class:`storage.search.SearchError` (:func:`check_search` says why first)."""
    clauses: list[str] = []
    params: list[Any] = []
    q = None
    if f.q is not None:
        compiled = search.compile_search(f.q)
        q = compiled.tsquery if dialect(db) == POSTGRESQL else compiled.fts5
    for clause, value in (
        ("t.created_at >= ?", to_iso(f.start) if f.start else None),
        ("t.created_at < ?", to_iso(f.end) if f.end else None),
        # a post about two brands is in each brand's queue
        ("(t.brand = ? OR t.post_id IN (SELECT post_id FROM post_extra_brands WHERE brand = ?))",
         (f.brand, f.brand) if f.brand is not None else None),
        ("t.source = ?", f.source),
        ("t.sentiment = ?", f.sentiment),
        ("t.lang = ?", f.lang),
        ("t.status = ?", None if f.status == "open" else f.status),  # a copy of post_status's
        ("t.post_id IN (SELECT post_id FROM post_status WHERE assignee = ?)", f.assignee),
        (pick(db, sqlite=_SEARCH_SQLITE, postgresql=_SEARCH_PG), q),
        ("t.post_id IN (SELECT post_id FROM incident_posts WHERE incident_id = ?)", f.incident),
    ):
        if value is not None:
            clauses.append(clause)
            params.extend(value if isinstance(value, tuple) else (value,))
    if f.status == "open":
        clauses.append(f"t.status IN {OPEN!r}")  # constants: ('new', 'assigned', 'replied')
    if f.unsupported:
        # a literal 0, not a bound value: only then may SQLite read idx_triage_unsupported,
        # the partial index of exactly these rows
        clauses.append("t.supported = 0")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


SEARCH_HELP = ('Use words, "quoted phrases", OR, AND, NOT word or -word, parentheses and'
               " prefix*, as in brand queries: refund OR \"charged twice\" -test")


def check_search(db: Db, q: str) -> str | None:
    """Why a text search cannot be run (the query parser's message, with how to write one), or
    None when it can. Never a database's message: the compiled search only quotes words."""
    try:
        compiled = search.compile_search(q)
        if dialect(db) == POSTGRESQL:
            _check_pg(db, compiled.tsquery)
    except search.SearchError as exc:
        return f"The search could not be read: {exc}. {SEARCH_HELP}"
    return None


def _check_pg(db: Db, tsquery: str) -> None:
    """Let PostgreSQL parse the compiled query, as the queue will."""
    import psycopg  # only where PostgreSQL is configured

    try:
        db.execute("SELECT to_tsquery('simple', search_fold(?))", [tsquery]).fetchall()
    except psycopg.Error as exc:
        raise search.SearchError(str(exc).strip()) from exc


def queue_sql(db: Db, f: QueueFilter, limit: int, offset: int) -> tuple[str, list[Any]]:
    """The queue's SQL: the page's post ids come from triage's indexes in the queue's order
    (no table row is read for posts that do not make the page), then only those rows are
    joined, with the score that put each one there (which model scored it, and whether it
    knew the language: ``language_supported`` 0 means the sentiment and urgency are a guess),
    and who has the post. ``priority`` is the sort key (rank, times the waiting factor)."""
    page, params = _page_ids(db, f, limit, offset)
    sql = (
        "SELECT t.post_id, t.created_at, t.brand, t.source, t.lang, t.sentiment, t.urgency,"  # noqa: S608 (constant clauses)
        " t.followers, t.rank, page.priority, t.status, t.supported AS language_supported,"
        " s.scored_by, s.model, s.model_version, p.platform, p.author, p.url, p.text, p.kind,"
        " p.rating, st.assignee"
        f" FROM ({page}) page"
        " JOIN triage t ON t.post_id = page.post_id JOIN posts p ON p.id = t.post_id"
        " LEFT JOIN scores s ON s.id = t.score_id"
        " LEFT JOIN post_status st ON st.post_id = t.post_id"
        f" ORDER BY page.priority DESC, {_TIES}"
    )
    return sql, params


def _page_ids(db: Db, f: QueueFilter, limit: int, offset: int) -> tuple[str, list[Any]]:
    """The page's post ids and priorities. In rank order: the first rows of an index in that
    order that pass the filters. Counting time waited, on SQLite: the period's rows sorted by
    the computed factor (:func:`_priority`); on PostgreSQL: the bands of :func:`_bands`, each
    band's first ``offset + limit`` rows in rank order (its factor is one constant, so rank
    order is its order), merged. On 10 million posts the sort read every row of the period
    (0.2 to 0.7 s) where each band comes from an index in order (20 to 110 ms); SQLite's
    planner reads the bands worse than the sort at the scale it serves (1 million posts:
    the sort 1 to 75 ms, the bands up to 0.9 s; bench/dashboard.py)."""
    where, params = _where(db, f)
    if f.waiting is None or dialect(db) != POSTGRESQL:
        priority, order_params = _priority(f.waiting)
        return (f"SELECT t.post_id, {priority} AS priority, t.created_at FROM triage t{where}"  # noqa: S608 (constant clauses)
                f" ORDER BY priority DESC, {_TIES} LIMIT ? OFFSET ?",
                [*order_params, *params, limit, offset])
    arms, values = [], []
    statuses = (STATUSES if f.status is None else OPEN if f.status == "open"
                else (f.status,))
    for number, band in enumerate(_bands(f.waiting, statuses)):
        joined = f"{where} AND {band.clause}" if where else f" WHERE {band.clause}"
        arms.append(f"SELECT * FROM (SELECT t.post_id, t.rank * {band.factor!r} AS priority,"  # noqa: S608 (constant clauses)
                    f" t.created_at FROM triage t{joined} ORDER BY t.rank DESC, {_TIES}"
                    f" LIMIT ?) band{number}")
        values += [*params, *band.params, limit + offset]
    merged = " UNION ALL ".join(arms)
    return (f"SELECT post_id, priority, created_at FROM ({merged}) bands"  # noqa: S608 (constant clauses)
            " ORDER BY priority DESC, created_at DESC, post_id DESC LIMIT ? OFFSET ?",
            [*values, limit, offset])


def queue(db: Db, f: QueueFilter, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Queue rows, most urgent × widest reach first, with the post and its status."""
    return [dict(r) for r in db.query(*queue_sql(db, f, limit, offset))]


def count_queue(db: Db, f: QueueFilter, cap: int = COUNT_CAP) -> int:
    """How many rows match, counted up to ``cap`` + 1 (the page shows "cap+")."""
    where, params = _where(db, f)
    sql = f"SELECT count(*) FROM (SELECT 1 FROM triage t{where} LIMIT ?) matched"  # noqa: S608
    return int(db.execute(sql, [*params, cap + 1]).fetchone()[0])


def distinct_values(db: Db, column: str) -> list[str]:
    """Brands, sources or languages present, read by skipping through an index.

    A recursive "loose index scan": one index seek per distinct value instead of reading
    every row, so the filter menus stay instant on a million posts. Brands and sources come
    from the posts' indexes, languages from the queue's (``idx_triage_lang``): the languages a
    queue filter can find, posts no model understands and ``und`` (undetermined) included.
    """
    table, col = {"brand": ("posts", "brand"), "source": ("posts", "source"),
                  "lang": ("triage", "lang")}[column]
    sql = (
        f"WITH RECURSIVE v(x) AS (SELECT min({col}) FROM {table} UNION ALL"  # noqa: S608
        f" SELECT (SELECT min({col}) FROM {table} WHERE {col} > x) FROM v WHERE x IS NOT NULL)"
        " SELECT x FROM v WHERE x IS NOT NULL LIMIT 200"
    )
    return [r[0] for r in db.execute(sql).fetchall()]


def set_status(db: Db, post_id: int, status: str, by: str, now: datetime) -> str:
    """Record what a person decided about a post; returns the status it had (for the audit log
    and undo). The first move to an answered status stamps ``first_response_at`` (kept when the
    post is reopened: the customer was answered then); a resolved status stamps ``resolved_at``
    (cleared when reopened); back to ``new`` means nobody has it, so the assignee goes."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of: {', '.join(STATUSES)}")
    stamp = to_iso(now)
    with immediate(db):
        row = db.execute("SELECT status FROM post_status WHERE post_id = ?", [post_id]).fetchone()
        db.execute(
            "INSERT INTO post_status (post_id, status, updated_at, by, first_response_at,"
            " resolved_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (post_id) DO UPDATE SET"
            " status = excluded.status, updated_at = excluded.updated_at, by = excluded.by,"
            " first_response_at = coalesce(post_status.first_response_at,"
            " excluded.first_response_at), resolved_at = excluded.resolved_at,"
            " assignee = CASE WHEN excluded.status = 'new' THEN NULL"
            " ELSE post_status.assignee END",
            [post_id, status, stamp, by, stamp if status in ANSWERED else None,
             stamp if status in RESOLVED else None],
        )
    return str(row[0]) if row else "new"
