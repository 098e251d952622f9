"""What happened to a brand's posts in a time window: counts per hour, texts, example posts.

Spikes, digests and incidents ask these questions of a half-open window ``[start, end)``;
every statement that answers one lives here, so the SQL can be made portable in one place.
They are built from three fragments, each written once:

- :data:`NEWEST_SCORE` joins a post's NEWEST score: a re-score by a newer model replaces the
  old verdict;
- :data:`IN_WINDOW` keeps to the window on an index and skips cross-posts (one author's posts
  linked to their earlier identical one), so one complaint pasted on three platforms counts
  once;
- :data:`EXTRA_BRAND` adds a brand's extra posts (``post_extra_brands``): a post about two
  brands counts for both.

Two ways of naming "the brand's posts" remain, because each caller's figures depend on its
own: a spike *series* (``series_*``) may have no brand, meaning the posts without one
(``p.brand IS NOT DISTINCT FROM ?``), and may keep to one source; a digest's *brand*
(``brand_*``) is None when no brands are configured and then means every post
(:func:`brand_scoped` leaves its filter out). Values are always bound parameters; the only text
ever put into a statement is one of these constant fragments. Every statement is the same on
SQLite and PostgreSQL (:mod:`storage.migrations_pg` gives PostgreSQL SQLite's ``unixepoch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from listener.core.models import to_iso
from storage.engine import Db

NEWEST_SCORE = "s.id = (SELECT max(id) FROM scores WHERE post_id = p.id)"
IN_WINDOW = "p.created_at >= ? AND p.created_at < ? AND p.duplicate_of IS NULL"
EXTRA_BRAND = "p.id IN (SELECT post_id FROM post_extra_brands WHERE brand = ?)"

# -- a spike series: one brand (or the posts without one), one source or all -------------------

# hours back from the window's end: bucket 0 is the window, bucket k ended k hours before it.
# A post about two brands counts in both brands' series (its extra brands come from
# post_extra_brands, usually empty). ?1 is the end in integer seconds, ?2 and ?3 the range.
# unixepoch (SQLite 3.38; storage.migrations_pg defines it on PostgreSQL) and integer division,
# which truncates on both engines; a counted comparison is a CASE (PostgreSQL sums no booleans).
# Cells come in (brand, source, hour) order, NULLs first as SQLite sorts them (PostgreSQL puts
# them last unless told); SQLite's grouping already yields that order, so it sorts nothing more.
SERIES_QUERY = (
    "SELECT b.brand, p.source, (?1 - 1 - unixepoch(p.created_at)) / 3600 AS hour,"  # noqa: S608
    " count(*) AS posts, count(s.id) AS scored,"
    " sum(CASE WHEN s.sentiment = 'negative' THEN 1 ELSE 0 END) AS negative"
    " FROM posts p JOIN (SELECT id AS post_id, brand FROM posts WHERE created_at >= ?2"
    " AND created_at < ?3 UNION ALL SELECT e.post_id, e.brand FROM post_extra_brands e"
    " JOIN posts q ON q.id = e.post_id WHERE q.created_at >= ?2 AND q.created_at < ?3) b"
    f" ON b.post_id = p.id LEFT JOIN scores s ON {NEWEST_SCORE}"
    " WHERE p.duplicate_of IS NULL GROUP BY b.brand, p.source, hour"
    " ORDER BY b.brand NULLS FIRST, p.source NULLS FIRST, hour"
)
# the posts of one series in the window (brand may be NULL; source NULL means every source).
# IS NOT DISTINCT FROM is SQLite's IS (same plan there); PostgreSQL types a bare parameter only
# with a CAST.
_SERIES = (f"{IN_WINDOW} AND (p.brand IS NOT DISTINCT FROM ? OR {EXTRA_BRAND})"
           " AND (CAST(? AS TEXT) IS NULL OR p.source = ?)")
# newest first; posts of the same second newest-stored first, so a limit keeps the same posts
# on both engines
_SERIES_TEXTS = (
    f"SELECT p.text FROM posts p WHERE {_SERIES}"  # noqa: S608 (constant fragments)
    " ORDER BY p.created_at DESC, p.id DESC LIMIT ?"
)
# the same posts, most negative and urgent first; only scored ones (examples show their score)
_SERIES_EXAMPLES = (
    f"SELECT p.id FROM posts p JOIN scores s ON {NEWEST_SCORE}"  # noqa: S608 (constant fragments)
    f" WHERE {_SERIES}"
    " ORDER BY s.p_negative + s.urgency DESC, p.id LIMIT ?"
)


@dataclass(frozen=True)
class SeriesCount:
    """One hour of one (brand, source) series: its posts, how many are scored, how many of
    those are negative (by their newest score)."""

    brand: str | None
    source: str | None
    hour: int  # whole hours back from the end: 0 is the hour that ends there
    posts: int
    scored: int
    negative: int


def series_counts(db: Db, start: datetime, end: datetime) -> list[SeriesCount]:
    """Posts, scored and negative posts per hour back from ``end``, per (brand, source), for
    every post in ``[start, end)``: the series spike detection compares the last hour with.

    One indexed range over ``posts(created_at)`` (one query for every brand and source); a
    cross-post counts once (its first post); a post counts for each of its brands.
    """
    rows = db.execute(SERIES_QUERY, [int(end.timestamp()), to_iso(start), to_iso(end)])
    return [SeriesCount(*row) for row in rows]


def series_texts(db: Db, brand: str | None, source: str | None, start: datetime,
                 end: datetime, limit: int) -> list[str]:
    """Texts of a series' posts in ``[start, end)``, newest first, at most ``limit``: what a
    spike's top terms are counted on (the window's against its baseline's).

    ``brand`` None: the posts without a brand; ``source`` None: every source."""
    params = [to_iso(start), to_iso(end), brand, brand, source, source, limit]
    return [row[0] for row in db.execute(_SERIES_TEXTS, params)]


def series_examples(db: Db, brand: str | None, source: str | None, start: datetime,
                    end: datetime, limit: int) -> list[int]:
    """Ids of a series' scored posts in ``[start, end)``, most negative and urgent first
    (``p_negative + urgency``), at most ``limit``: the posts a spike report shows.

    Unscored posts are left out: an example is shown with its score."""
    params = [to_iso(start), to_iso(end), brand, brand, source, source, limit]
    return [row[0] for row in db.execute(_SERIES_EXAMPLES, params)]


# -- a brand's posts (or every post): what a digest reports --------------------------------------

# hours since the period start (exact: integer seconds), per sentiment and source, in that
# order (unixepoch, the CASE sum and the order: see SERIES_QUERY)
_BRAND_HOURS = (
    "SELECT (unixepoch(p.created_at) - ?) / 3600 AS hour,"  # noqa: S608 (constant fragments)
    " coalesce(s.sentiment, 'unscored') AS sentiment, coalesce(p.source, '') AS source,"
    " count(*) AS n, sum(CASE WHEN coalesce(s.urgency, 0) >= ? THEN 1 ELSE 0 END) AS help"
    f" FROM posts p LEFT JOIN scores s ON {NEWEST_SCORE}"
    f" WHERE {{brand}} {IN_WINDOW}"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
# is there anything to report? The same posts the hours count, stopping at the first one
_BRAND_ANY_POST = (
    f"SELECT 1 FROM posts p WHERE {{brand}} {IN_WINDOW} LIMIT 1"  # noqa: S608 (constant fragments)
)
# most negative first, a post's probability weighted by the author's reach
_BRAND_TOP_NEGATIVE = (
    f"SELECT p.id FROM posts p JOIN scores s ON {NEWEST_SCORE}"  # noqa: S608 (constant fragments)
    f" WHERE {{brand}} {IN_WINDOW}"
    " AND s.sentiment = 'negative' ORDER BY s.p_negative * CASE"
    " WHEN p.author_followers >= 100000 THEN 2.0 WHEN p.author_followers >= 10000 THEN 1.5"
    " WHEN p.author_followers >= 1000 THEN 1.2 ELSE 1.0 END DESC, p.id LIMIT ?"
)
_BRAND_TOP_HELP = (
    f"SELECT p.id FROM posts p JOIN scores s ON {NEWEST_SCORE}"  # noqa: S608 (constant fragments)
    f" WHERE {{brand}} {IN_WINDOW}"
    " AND s.urgency >= ? ORDER BY s.urgency DESC, coalesce(p.author_followers, 0) DESC, p.id"
    " LIMIT ?"
)
# texts for the terms that set the period's negative posts apart from its other posts (ties
# in time broken by id, as in _SERIES_TEXTS); `negative` is 0/1 on SQLite, a bool on PostgreSQL
_BRAND_TEXTS = (
    "SELECT p.text,"  # noqa: S608 (constant fragments)
    " coalesce(s.sentiment, '') = 'negative' AS negative"
    f" FROM posts p LEFT JOIN scores s ON {NEWEST_SCORE}"
    f" WHERE {{brand}} {IN_WINDOW}"
    " ORDER BY p.created_at DESC, p.id DESC LIMIT ?"
)


def brand_scoped(sql: str, brand: str | None, alias: str = "p") -> str:
    """``sql`` (with a ``{brand}`` slot before its first condition) for one brand, or for every
    post when ``brand`` is None (no brands configured).

    A post belongs to a brand when it is its first brand or one of its extra brands (a post
    about two brands is in both brands' digests); reports (alias ``r``) have one brand."""
    if brand is None:
        return sql.format(brand="")
    if alias == "p":
        return sql.format(brand=f"(p.brand = ? OR {EXTRA_BRAND}) AND")
    return sql.format(brand=f"{alias}.brand = ? AND")


def brand_params(brand: str | None, alias: str = "p") -> list[str]:
    """The values :func:`brand_scoped`'s filter binds."""
    if brand is None:
        return []
    return [brand, brand] if alias == "p" else [brand]


def _range(start: datetime, end: datetime) -> list[str]:
    return [to_iso(start), to_iso(end)]


@dataclass(frozen=True)
class HourBucket:
    """A brand's posts of one hour, sentiment and source."""

    hour: int  # whole hours since the period start
    sentiment: str  # the newest score's, 'unscored' for a post without one
    source: str  # '' for a post without a source
    posts: int
    help: int  # of them, posts whose urgency is at least the threshold asked for


def brand_hours(db: Db, brand: str | None, start: datetime, end: datetime,
                help_min_urgency: float) -> list[HourBucket]:
    """The brand's posts in ``[start, end)`` per hour since ``start``, sentiment and source,
    and how many of them need a reply (urgency ≥ ``help_min_urgency``): a digest's volume."""
    params = [int(start.timestamp()), help_min_urgency, *brand_params(brand),
              *_range(start, end)]
    return [HourBucket(row["hour"], row["sentiment"], row["source"], row["n"], row["help"])
            for row in db.query(brand_scoped(_BRAND_HOURS, brand), params)]


def brand_has_posts(db: Db, brand: str | None, start: datetime, end: datetime) -> bool:
    """Whether ``[start, end)`` holds a post :func:`brand_hours` would count (one indexed
    probe), so a digest of an empty period costs one lookup and "no posts" here means its
    volume would have said "0 posts"."""
    sql = brand_scoped(_BRAND_ANY_POST, brand)
    return db.execute(sql, [*brand_params(brand), *_range(start, end)]).fetchone() is not None


def brand_top_negative(db: Db, brand: str | None, start: datetime, end: datetime,
                       limit: int) -> list[int]:
    """Ids of the brand's negative posts in ``[start, end)``, at most ``limit``, the most
    negative first with a post's probability weighted by its author's reach (what a digest
    shows first: a complaint many people saw)."""
    return _ids(db, _BRAND_TOP_NEGATIVE, brand, [*_range(start, end), limit])


def brand_top_help(db: Db, brand: str | None, start: datetime, end: datetime,
                   min_urgency: float, limit: int) -> list[int]:
    """Ids of the brand's posts in ``[start, end)`` with urgency ≥ ``min_urgency``, at most
    ``limit``, the most urgent first, then the widest reach (the people waiting for a reply)."""
    return _ids(db, _BRAND_TOP_HELP, brand, [*_range(start, end), min_urgency, limit])


def _ids(db: Db, sql: str, brand: str | None, tail: Sequence[object]) -> list[int]:
    return [row["id"] for row in db.query(brand_scoped(sql, brand), [*brand_params(brand), *tail])]


@dataclass(frozen=True)
class PostText:
    """A post's text and whether its newest score is negative."""

    text: str
    negative: bool


def brand_texts(db: Db, brand: str | None, start: datetime, end: datetime,
                limit: int) -> list[PostText]:
    """The brand's newest ``limit`` posts of ``[start, end)``, each with whether it is
    negative: the terms that set a period's complaints apart from its other posts."""
    rows = db.execute(brand_scoped(_BRAND_TEXTS, brand),
                      [*brand_params(brand), *_range(start, end), limit]).fetchall()
    return [PostText(text, bool(negative)) for text, negative in rows]


# -- posts whose first brand is the brand: an incident's background ----------------------------

# cross-posts included and extra brands not: unlike the series and brand statements above
# (IS NOT DISTINCT FROM and the tie-breaker: see _SERIES and _SERIES_TEXTS)
_FIRST_BRAND_TEXTS = (
    "SELECT text FROM posts WHERE brand IS NOT DISTINCT FROM ? AND created_at >= ?"
    " AND created_at < ? ORDER BY created_at DESC, id DESC LIMIT 5000"
)


def first_brand_texts(db: Db, brand: str | None, start: datetime,
                      end: datetime) -> list[str]:
    """Texts of the newest 5,000 posts in ``[start, end)`` whose FIRST brand is ``brand``
    (None: posts without a brand): what an incident's words are compared with, the brand's
    usual talk of the day before it."""
    return [row[0] for row in db.execute(_FIRST_BRAND_TEXTS,
                                         [brand, to_iso(start), to_iso(end)]).fetchall()]
