"""Query-string parsing shared by every page, and the two helpers that keep post data inert.

Every filter arrives as text and leaves as a checked value or a 400 with a sentence saying
what is accepted; empty form fields mean "any".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from listener.core.models import parse_iso, to_iso
from storage.trends import BUCKETS, Period
from storage.triage import STATUSES, QueueFilter, Waiting

RANGES = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24, "90d": 90 * 24}
DEFAULT_BUCKET = {"24h": "hour", "7d": "day", "30d": "day", "90d": "day"}
# Every range per every bucket is either shown as asked or refused with a message naming what
# the range can be shown per; nothing is quietly changed. Refused: a chart of one or two bars
# (24 hours per day or week is one partial bar; 7 days per week two partial weeks), and 90 days
# per hour (2,160 bars: thinner than a pixel, and the hourly rollup read grows with them).
# Per hour goes up to 30 days: 720 bars from post_hours, within the dashboard's time budget.
BUCKETS_FOR = {"24h": ("hour",), "7d": ("hour", "day"), "30d": ("hour", "day", "week"),
               "90d": ("day", "week")}
REFUSED_BECAUSE = {
    ("24h", "day"): "24 hours per day is one bar", ("24h", "week"): "24 hours per week is one bar",
    ("7d", "week"): "7 days per week is two partial weeks",
    ("90d", "hour"): "90 days per hour would be 2,160 bars (per hour goes up to 30 days)",
}
SENTIMENTS = ("negative", "neutral", "positive")
# the queue's views (issue 18), as its tabs name them: "new" is nobody's yet (Unassigned),
# "mine" the open posts assigned to whoever looks, "open" everything still someone's work
QUEUE_VIEWS = {"new": "Unassigned", "mine": "Mine", "open": "Open", "assigned": "Assigned",
               "replied": "Replied", "handled": "Handled", "not_relevant": "Not relevant",
               "all": "All"}
# the queue's order: rank x time waited (storage.triage.Waiting), or rank alone
QUEUE_ORDERS = {"waiting": "waiting time counts", "rank": "rank only"}
PAGE_SIZE = 50
MAX_TEXT = 200  # longest accepted filter value (brand, source, search …)
MAX_PAGE = 10_000
# views end within these bounds: a period, the one before it and every bucket key stay far
# inside what datetime can hold (year 1 to 9999), whatever the range
FIRST_END = datetime(1970, 1, 1, tzinfo=UTC)
LAST_END = datetime(3000, 1, 1, tzinfo=UTC)
SQLITE_MAX_INT = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """``<rowid:post_id>``: a decimal id SQLite can hold. A longer number never matches the
    route (404), where ``<int:…>`` would hand SQLite an integer it cannot bind (500)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", SQLITE_MAX_INT)
        super().__init__(url_map, *args, **kwargs)


@dataclass(frozen=True)
class View:
    """The filters of one page view, parsed; ``args`` rebuilds links that keep them."""

    range: str
    bucket: str
    end: datetime
    end_arg: str | None
    brand: str | None
    source: str | None
    sentiment: str | None
    lang: str | None
    status: str | None
    q: str | None
    page: int
    status_default: str | None = "new"
    incident: str | None = None  # one incident's posts, whenever they were written
    unsupported: bool = False  # only posts whose language the model did not understand
    mine: bool = False  # the queue's "Mine": open posts assigned to whoever looks
    order: str = "waiting"  # the queue's order (QUEUE_ORDERS)

    @property
    def period(self) -> Period:
        """Views per day or week cover whole days (they read the daily rollup)."""
        return Period.ending(self.end, RANGES[self.range], whole_days=self.bucket != "hour")

    def queue_filter(self, *, me: str | None = None, waiting: Waiting | None = None
                     ) -> QueueFilter:
        """The storage filter of this view; ``me`` is who "Mine" means (nobody's posts when
        None), ``waiting`` the clock and targets the order counts time waited with."""
        period = self.period
        start, end = (None, None) if self.incident else (period.start, period.end)
        return QueueFilter(start=start, end=end, brand=self.brand,
                           source=self.source, sentiment=self.sentiment, lang=self.lang,
                           status=self.status, q=self.q, incident=self.incident,
                           unsupported=self.unsupported,
                           assignee=(me or "") if self.mine else None,
                           waiting=waiting if self.order == "waiting" else None)

    @property
    def queue_view(self) -> str:
        """Which of the queue's views (QUEUE_VIEWS) this is."""
        if self.mine:
            return "mine"
        return self.status or "all"

    def args(self, **changes: Any) -> dict[str, Any]:
        """Non-default query arguments of this view, with ``changes`` applied."""
        values: dict[str, Any] = {
            "range": self.range, "bucket": self.bucket, "end": self.end_arg, "brand": self.brand,
            "source": self.source, "sentiment": self.sentiment, "lang": self.lang,
            "status": self.status or "all", "q": self.q, "page": self.page,
            "incident": self.incident, "unsupported": "1" if self.unsupported else None,
            "order": None if self.order == "waiting" else self.order,
        }
        if self.mine:
            values["status"] = "mine"
        elif self.status == self.status_default:
            values["status"] = None
        if self.bucket == DEFAULT_BUCKET[self.range]:
            values["bucket"] = None
        values.update(changes)
        return {k: v for k, v in values.items() if v not in (None, "", 1)}


def _text(args: Mapping[str, str], name: str) -> str | None:
    value = (args.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        raise BadRequest(f"'{name}' is longer than {MAX_TEXT} characters")
    return value or None


def _choice(args: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str | None
            ) -> str | None:
    value = _text(args, name)
    if value is None:
        return default
    if value not in allowed:
        raise BadRequest(f"'{name}' must be one of: {', '.join(allowed)}")
    return value


def _end(value: str | None, now: datetime) -> datetime:
    """``end`` as a day (the view ends at that day's midnight) or an ISO time; default now.

    Bounded, because the period before a view and its buckets are computed from it: at the
    ends of the calendar that arithmetic overflows (``end=9999-12-31``, ``end=0001-01-01``).
    """
    if value is None:
        return now
    bounds = (f"'end' must fall in the years {FIRST_END.year} to {LAST_END.year - 1}"
              " (2026-11-20, 2026-11-20T08:00Z)")
    try:
        if len(value) == 10:
            end = datetime.fromisoformat(value).replace(tzinfo=UTC) + timedelta(days=1)
        else:
            end = parse_iso(value)
    except OverflowError:  # 9999-12-31 plus a day, or an offset past year 1 or 9999
        raise BadRequest(bounds) from None
    except ValueError:
        raise BadRequest("'end' must be a date (2026-11-20) or a time (2026-11-20T08:00Z)") from None
    if not FIRST_END < end <= LAST_END:
        raise BadRequest(bounds)
    return end


def parse_page(value: str | None) -> int:
    """``page`` as 1 … MAX_PAGE. ASCII digits only: ``str.isdigit`` accepts '²', which
    ``int`` then refuses."""
    text = (value or "").strip() or "1"
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest(f"'page' must be a number from 1 to {MAX_PAGE}")
    return int(text)


def parse_view(args: Mapping[str, str], now: datetime, *, default_range: str = "7d",
               default_status: str | None = "new") -> View:
    """Parse the common filters; raises BadRequest naming the bad argument."""
    range_ = _choice(args, "range", tuple(RANGES), default_range) or default_range
    status = _choice(args, "status", (*STATUSES, "all"), default_status)
    page = parse_page(_text(args, "page"))
    end_arg = _text(args, "end")
    bucket = _choice(args, "bucket", BUCKETS, DEFAULT_BUCKET[range_]) or "hour"
    if bucket not in BUCKETS_FOR[range_]:
        raise BucketRefused(range_, bucket)
    return View(
        range=range_, bucket=bucket,
        end=_end(end_arg, now), end_arg=end_arg,
        brand=_text(args, "brand"), source=_text(args, "source"),
        sentiment=_choice(args, "sentiment", SENTIMENTS, None), lang=_text(args, "lang"),
        status=None if status == "all" else status, q=_text(args, "q"), page=page,
        status_default=default_status, incident=_incident(args),
        unsupported=_flag(args, "unsupported"),
    )


def parse_queue_view(args: Mapping[str, str], now: datetime) -> View:
    """The queue's filters: the common ones, its views (``status``: one of QUEUE_VIEWS, 'new'
    by default) and its order (``order``: QUEUE_ORDERS, 'waiting' by default)."""
    status = _choice(args, "status", tuple(QUEUE_VIEWS), "new") or "new"
    order = _choice(args, "order", tuple(QUEUE_ORDERS), "waiting") or "waiting"
    common = {k: v for k, v in args.items() if k != "status"}
    view = parse_view(common, now, default_range="30d", default_status=None)
    return replace(view, status=_queue_status(status), status_default="new",
                   mine=status == "mine", order=order)


def queue_views(view: View) -> list[tuple[str, View]]:
    """Each of the queue's views with this view's other filters (the tabs), first page."""
    return [(key, replace(view, status=_queue_status(key), mine=key == "mine", page=1))
            for key in QUEUE_VIEWS]


def counted_views(view: View) -> list[tuple[str, View]]:
    """The views whose posts the queue's tabs count: all of them, or with a text search only
    the current one (each count would repeat the search: eight of them took a third of a
    second on 10 million posts, bench/dashboard.py)."""
    return [(key, tab) for key, tab in queue_views(view)
            if not view.q or key == view.queue_view]


def _queue_status(key: str) -> str | None:
    """The storage status filter of a queue view: "mine" is the open ones (of one person),
    "all" no filter."""
    return None if key == "all" else "open" if key == "mine" else key


class BucketRefused(BadRequest):
    """A range and bucket the overview does not show (:data:`BUCKETS_FOR`): a 400 whose
    message says why and what the range can be shown per."""

    def __init__(self, range_: str, bucket: str) -> None:
        self.range, self.bucket, self.allowed = range_, bucket, BUCKETS_FOR[range_]
        choices = " or ".join(f"per {b}" for b in self.allowed)
        super().__init__(f"'bucket' {bucket} is not offered for 'range' {range_}:"
                         f" {REFUSED_BECAUSE[(range_, bucket)]}. {range_} can be shown {choices}")


def _flag(args: Mapping[str, str], name: str) -> bool:
    """A checkbox: '1' (or 'true', 'on', 'yes') is on; absent, empty or '0' is off."""
    value = (_text(args, name) or "0").lower()
    if value not in ("0", "1", "true", "false", "on", "off", "yes", "no"):
        raise BadRequest(f"'{name}' must be 1 or 0")
    return value in ("1", "true", "on", "yes")


def _incident(args: Mapping[str, str]) -> str | None:
    """An incident id as alerts link to it (16 hex digits)."""
    value = _text(args, "incident")
    if value is not None and not re.fullmatch(r"[0-9a-f]{16}", value):
        raise BadRequest("'incident' must be an incident id (16 hex digits) from an alert's link")
    return value


def http_url(value: str | None) -> str | None:
    """The URL if it is a plain http(s) link, else None: ``javascript:``, ``data:`` and
    friends in a post's url field must never become a clickable link."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value.strip()


def short_time(value: str | datetime | None) -> str:
    """'2026-11-20T08:02:11Z' (or a datetime) → '2026-11-20 08:02' (UTC, as stored)."""
    if isinstance(value, datetime):
        value = to_iso(value)
    return value[:16].replace("T", " ") if value else "–"
