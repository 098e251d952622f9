"""The collect stage: pages from a source, each post's language and brands decided, each page
stored with its cursor in one transaction. ``run --once``, the daemon and ``backfill`` all
collect through these functions (wired by :class:`listener.pipeline.Runtime`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from sqlite_utils import Database

from listener.core.deadline import deadline
from listener.core.errors import DeadlineExceeded, SourceError
from listener.core.language import with_languages
from listener.core.models import Clock, Page
from listener.core.query import Brand
from listener.sources.base import Source
from storage import db as store

log = logging.getLogger(__name__)
DEFAULT_PAGE_DEADLINE = 120.0  # SourceConfig.page_deadline's default


def collect(
    db: Database, source: Source, clock: Clock, stop: threading.Event | None = None,
    brands: Sequence[Brand] = (), others: Sequence[Brand] = (), *,
    page_deadline: float = DEFAULT_PAGE_DEADLINE, beat: Callable[[], None] | None = None,
) -> int:
    """Fetch from the source's saved cursor; each page + its cursor is one transaction.

    With ``brands``, only posts matching one of their queries are kept (the cursor still moves
    past the others): every platform obeys the same query, whatever its own search returned.
    ``others`` (the rest of the configured brands) only add attributions: see
    :func:`keep_for_brands`. Each page gets ``page_deadline`` seconds, all its requests
    together: a server that drips or hangs fails the poll instead of pinning it (and SIGTERM)
    forever; the cursor stays where the last stored page left it.
    """
    new = 0
    for page in pages_within(source, source.fetch(store.load_cursor(db, source.name)),
                             page_deadline):
        if stop and stop.is_set():
            break  # shutting down: the page is not stored and its cursor not saved
        new += store.store_page(db, source.name, keep_for_brands(page, brands, others), clock())
        for bad in page.rejected:
            log.warning("source %s skipped record %s: %s", source.name, bad.where, bad.reason)
        if beat is not None:
            beat()
    return new


def pages_within(source: Source, pages: Iterator[Page], seconds: float) -> Iterator[Page]:
    """``pages``, each fetched within ``seconds`` (:mod:`listener.core.deadline`), else SourceError."""
    while True:
        try:
            with deadline(seconds, f"source {source.name}"):
                page = next(pages, None)
        except DeadlineExceeded as exc:
            raise SourceError(str(exc)) from None
        if page is None:
            return
        yield with_languages(page)  # every post's language, before brands' filters read it


def backfill(
    db: Database, source: Source, since: datetime, clock: Clock, brands: Sequence[Brand] = (),
    progress: Callable[[int, int], None] | None = None, others: Sequence[Brand] = (),
    page_deadline: float = DEFAULT_PAGE_DEADLINE,
) -> int:
    """Pull history back to ``since`` where the platform allows; never moves the live cursor.

    ``progress(fetched, new)`` is called after every stored page (the CLI draws a bar with it).
    """
    pull = getattr(source, "backfill", None)
    if pull is None:
        raise SourceError(f"source {source.name} ({source.type}) cannot backfill: its platform "
                          "offers no history beyond what every poll already fetches")
    new = 0
    for page in pages_within(source, pull(since), page_deadline):
        added = store.store_page(db, source.name, replace(keep_for_brands(page, brands, others),
                                                          cursor=None), clock())
        new += added
        if progress is not None:
            progress(len(page.posts), added)
    return new


def keep_for_brands(page: Page, brands: Sequence[Brand], others: Sequence[Brand] = ()) -> Page:
    """The page with only the posts one of ``brands`` accepts, each attributed to EVERY brand
    (of ``brands``, then ``others``) whose query accepts it.

    Every brand is asked, not only the one whose search returned the post: platform search is
    looser than our queries (stemming, plurals, hashtags), so brand A's search can return a post
    that only brand B's query accepts, and the source, having handed it out once, skips it when
    B's search returns it too. This is the one place where that post can be kept, so the
    decision is made here, over all brands, before the page and its cursor are stored together.
    The first brand is the one whose search found the post when it accepts it.
    """
    if not brands:
        return page
    own = {b.name for b in brands}
    everyone = [*brands, *(b for b in others if b.name not in own)]
    kept = []
    for post in page.posts:
        accepted = [b.name for b in everyone if b.accepts(post.text, post.lang, post.author)]
        if not accepted or accepted[0] not in own:
            continue  # none of this source's brands: the cursor moves past it
        first = post.brand if post.brand in accepted and post.brand in own else accepted[0]
        also = tuple(name for name in accepted if name != first)
        if (first, also) != (post.brand, post.also_brands):
            post = replace(post, brand=first, also_brands=also)
        kept.append(post)
    return replace(page, posts=kept)
