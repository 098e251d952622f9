"""Incidents: many customers reporting the same problem within minutes become ONE alert.

During an outage hundreds of customers post "X is down" in their own words. Each is a customer
(each stays in the queue and is counted), but paging a person hundreds of times helps nobody,
and staying silent is worse. So the rules stage groups, per brand, recent posts that say the
same thing (:mod:`alerts.similarity`: sentence vectors of the text with the brand's own terms
masked) within a time window:

- a post that would alert someone *starts* an incident when at least ``min_customers``
  different authors in the window wrote something at least ``similarity`` alike to it;
- any recent post of the brand *joins* an open incident when it is ``join_similarity`` alike to
  the incident's reports (the mean of their vectors) — lower, because during a burst a
  complaint about the brand is most likely about the burst, and a customer left out is paged
  on their own anyway, never silenced;
- a member's own alerts that have not been sent yet travel in the incident's alert instead
  (status ``incident``); alerts sent before the incident opened stay sent.

Each destination gets one incident message (count, first and latest report, sample posts, top
terms, a link to the dashboard's queue filtered to the incident), then at most one update every
``update_minutes`` with the reports that came since — threaded under the first message in Slack
(bot token), a comment on the ticket or issue, a reply e-mail — only after that first message
was delivered, so an update always has something to attach to.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from alerts.similarity import Vectorize, masker
from alerts.terms import top_terms
from listener.core.models import Report, parse_iso, to_iso
from listener.core.query import Brand, positive_terms
from storage import incidents as store
from storage import outbox
from storage.incidents import IncidentRow, VectorRow
from storage.reports import enqueue_report, last_incident_report_at, report_alert_status
from storage.windows import first_brand_texts

KIND, UPDATE_KIND, NAME = "incident", "incident_update", "incident"
CUSTOMERS_LISTED = 50  # handles named in the first message (all are in its numbers)


class IncidentConfig(BaseModel):
    """How reports of one problem are grouped into incidents (``incidents:`` in the config)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: every post alerts on its own")
    window_minutes: float = Field(
        15, gt=0, le=24 * 60, description="reports this close together can form or join one "
        "incident; an incident with no report for this long is over")
    min_customers: int = Field(
        5, ge=2, description="different authors saying the same thing before it is an incident")
    burst_minutes: float = Field(
        5, gt=0, le=60, description="an incident needs a burst: this many minutes with far more "
        "of the brand's negative or help-seeking posts than usual")
    sensitivity: Literal["low", "medium", "high"] = Field(
        "medium", description="how unlikely that many posts in burst_minutes must be at the "
        "brand's usual rate (the day before): low 1e-8, medium 1e-6, high 1e-4")
    similarity: float = Field(
        0.3, gt=0, le=1, description="cosine (0-1) two posts need to count as the same problem "
        "when an incident forms")
    join_similarity: float = Field(
        0.25, gt=0, le=1, description="cosine to an open incident's reports a post needs to join "
        "it")
    update_minutes: float = Field(
        5, ge=0, description="at most one update per destination this often (new reports wait)")
    examples: int = Field(5, ge=1, le=20, description="posts shown in each message")
    destinations: list[str] | None = Field(
        None, description="where incident alerts go; default: wherever its members' own alerts "
        "would have gone")


@dataclass(frozen=True)
class Candidate:
    """A recent post, for one of its brands. ``needy`` ones (they would alert a person) may
    start an incident; the others may only join one."""

    post_id: int
    brand: str
    created_at: datetime
    author: str | None
    text: str
    needy: bool

    def row(self, vector: np.ndarray) -> VectorRow:
        return VectorRow(self.post_id, self.brand, self.created_at, self.author, vector)


@dataclass
class Grouping:
    """What one rules batch changed: members added per incident."""

    added: dict[str, list[int]] = field(default_factory=dict)

    @property
    def members(self) -> set[int]:
        return {pid for ids in self.added.values() for pid in ids}


def worth_vectors(db: Database, candidates: Sequence[Candidate], window: timedelta
                  ) -> list[Candidate]:
    """The candidates that need a vector: all of a brand's when one of them could start an
    incident or the brand has one open; none otherwise (most batches, most brands)."""
    out: list[Candidate] = []
    for brand, group in _by_brand(candidates).items():
        since = min(c.created_at for c in group) - window
        if any(c.needy for c in group) or store.open_incidents(db, brand, since):
            out += group
    return out


def vectors_for(candidates: Sequence[Candidate], brands: Mapping[str, Brand],
                vectorize: Vectorize) -> np.ndarray:
    """Each candidate's text with its brand's identifying terms masked, vectorised at once."""
    maskers: dict[str, Callable[[str], str]] = {}
    texts = []
    for c in candidates:
        if c.brand not in maskers:
            maskers[c.brand] = masker(brands.get(c.brand), c.brand)
        texts.append(maskers[c.brand](c.text))
    return vectorize(texts) if texts else np.zeros((0, 1), np.float32)


def group(db: Database, candidates: Sequence[Candidate], vectors: np.ndarray,
          cfg: IncidentConfig, now: datetime) -> Grouping:
    """Start and join incidents for ``candidates`` (in the caller's transaction)."""
    result = Grouping()
    window = timedelta(minutes=cfg.window_minutes)
    store.save_vectors(db, [c.row(v) for c, v in zip(candidates, vectors, strict=True)
                            if c.needy])
    for brand, items in _by_brand(list(zip(candidates, vectors, strict=True))).items():
        _group_brand(db, brand, items, cfg, window, now, result)
    return result


_Grouped = TypeVar("_Grouped", Candidate, tuple[Candidate, np.ndarray])
"""What :func:`_by_brand` groups: candidates, or candidates with their vectors."""


def _by_brand(items: Sequence[_Grouped]) -> dict[str, list[_Grouped]]:
    out: dict[str, list[_Grouped]] = {}
    for item in items:
        c = item[0] if isinstance(item, tuple) else item
        out.setdefault(c.brand, []).append(item)
    return out


def _group_brand(db: Database, brand: str, items: list[tuple[Candidate, np.ndarray]],
                 cfg: IncidentConfig, window: timedelta, now: datetime, result: Grouping) -> None:
    items.sort(key=lambda item: (item[0].created_at, item[0].post_id))
    start, end = items[0][0].created_at - window, items[-1][0].created_at
    open_now = store.open_incidents(db, brand, start)
    pool = {r.post_id: r for r in store.loose_vectors(db, brand, start, end)}
    burst = Burst.load(db, brand, start, end, cfg)
    joined: dict[str, list[VectorRow]] = {}
    for c, v in items:
        if c.needy and c.post_id not in pool:
            continue  # in an incident already (swept in by an earlier post of this batch)
        if not burst.at(c.created_at):
            continue  # the brand's usual traffic: no incident starts or grows
        row = c.row(v)
        live = [i for i in open_now if i.last_at >= c.created_at - window]
        best = max(live, key=lambda i: float(i.centroid @ v), default=None)
        if best is not None and float(best.centroid @ v) >= cfg.join_similarity:
            _attach(best, [row], joined)
            pool.pop(c.post_id, None)
            continue
        if c.needy:
            opened = _maybe_open(brand, row, pool, cfg, window, now)
            if opened is not None:
                incident, members = opened
                if best is not None:  # one incident per brand at a time: one burst, one story
                    incident = best
                else:
                    open_now.append(incident)
                _attach(incident, members, joined)
                for m in members:
                    pool.pop(m.post_id, None)
                _sweep(incident, pool, cfg, c.created_at - window, c.created_at, joined)
    for incident in open_now:
        if incident.id in joined:
            store.save_incident(db, incident, joined[incident.id], now)
            result.added.setdefault(incident.id, []).extend(r.post_id for r in joined[incident.id])


BURST_P = {"low": 1e-8, "medium": 1e-6, "high": 1e-4}


@dataclass(frozen=True)
class Burst:
    """Whether a brand's posts that need a person come in a burst at a moment: in the
    ``burst_minutes`` before it, so many that the brand's usual rate (the day before) makes that
    count less likely than the sensitivity's p-value, and at least ``min_customers``.

    Without it a busy brand's everyday complaints — the same few topics every day — would form
    incidents. A Poisson tail over a short window, not a fixed ratio over a long one: at the
    usual rate a sliding 15-minute window reaches 3× its mean by chance every day or two, while
    an outage's first minute is already far out in the tail (so the alert is not held back)."""

    times: tuple[float, ...]  # posix times of the brand's needy posts, sorted
    window: float
    threshold: int

    @classmethod
    def load(cls, db: Database, brand: str, start: datetime, end: datetime,
             cfg: IncidentConfig) -> Burst:
        day, window = timedelta(days=1), timedelta(minutes=cfg.burst_minutes)
        usual = store.needy_count(db, brand, start - day, start) * (window / day)
        times = tuple(t.timestamp() for t in store.needy_times(db, brand, start - window, end))
        threshold = max(cfg.min_customers, poisson_threshold(usual, BURST_P[cfg.sensitivity]))
        return cls(times, window.total_seconds(), threshold)

    def at(self, moment: datetime) -> bool:
        """How many came in the burst window up to ``moment`` reaches the threshold."""
        t = moment.timestamp()
        count = bisect_right(self.times, t) - bisect_left(self.times, t - self.window)
        return count >= self.threshold


def poisson_threshold(mean: float, p: float) -> int:
    """The smallest count k with P(N ≥ k) < p for N ~ Poisson(mean): what the usual rate
    almost never produces. (Summed term by term: no scipy for one tail.)"""
    term = math.exp(-mean)  # P(N = 0)
    below = 0.0  # P(N < k)
    k = 0
    while 1.0 - below >= p and k < 100_000:
        below += term
        k += 1
        term *= mean / k
    return k


def _maybe_open(brand: str, row: VectorRow, pool: dict[int, VectorRow], cfg: IncidentConfig,
                window: timedelta, now: datetime) -> tuple[IncidentRow, list[VectorRow]] | None:
    """A new incident around ``row`` when enough different customers said the same thing.

    The same thing: ``similarity``-alike to ``row``; or, in words further apart, as alike to
    what the window's posts have in common (their mean) as ``row`` is — during a burst that
    common core is the burst's problem, and paraphrases ("down", "503", "won't load") reach it
    long before enough of them are alike pair by pair."""
    window_rows = [r for r in pool.values() if r.post_id != row.post_id
                   and row.created_at - window <= r.created_at <= row.created_at]
    members = [r for r in window_rows if float(r.vector @ row.vector) >= cfg.similarity]
    members.append(row)
    if len({_customer(r) for r in members}) < cfg.min_customers:
        members = _core(window_rows, row, cfg.similarity)
        if len({_customer(r) for r in members}) < cfg.min_customers:
            return None
    members.sort(key=lambda r: (r.created_at, r.post_id))
    key = f"{brand}\x1f{members[0].post_id}"
    incident = IncidentRow(
        id=hashlib.sha256(key.encode()).hexdigest()[:16], brand=brand, opened_at=now,
        first_at=members[0].created_at, last_at=members[-1].created_at, reports=0, customers=0,
        total=np.zeros_like(row.vector, dtype=np.float32))
    return incident, members


def _core(rows: Sequence[VectorRow], row: VectorRow, similarity: float) -> list[VectorRow]:
    """The posts of the window (``row`` among them) that are ``similarity``-alike to the
    window's mean; empty unless ``row`` is one of them."""
    everyone = [*rows, row]
    mean = np.sum([r.vector for r in everyone], axis=0)
    mean = mean / (float(np.linalg.norm(mean)) or 1.0)
    core = [r for r in everyone if float(r.vector @ mean) >= similarity]
    return core if any(r.post_id == row.post_id for r in core) else []


def _sweep(incident: IncidentRow, pool: dict[int, VectorRow], cfg: IncidentConfig,
           since: datetime, until: datetime, joined: dict[str, list[VectorRow]]) -> None:
    """Loose posts of the window that opened (or grew) the incident and are like it join it
    now; later posts are asked one by one as they come, so the incident never chains back
    through a quiet hour."""
    near = [r for r in pool.values() if since <= r.created_at <= until
            and float(incident.centroid @ r.vector) >= cfg.join_similarity]
    _attach(incident, near, joined)
    for r in near:
        pool.pop(r.post_id, None)


def _attach(incident: IncidentRow, rows: Sequence[VectorRow],
            joined: dict[str, list[VectorRow]]) -> None:
    for r in rows:
        incident.total = incident.total + r.vector.astype(np.float32)
        incident.first_at = min(incident.first_at, r.created_at)
        incident.last_at = max(incident.last_at, r.created_at)
    joined.setdefault(incident.id, []).extend(rows)


def _customer(row: VectorRow) -> str:
    """Who posted: the handle, case-insensitive; a post without one counts as its own author."""
    return row.author.lower() if row.author else f"post:{row.post_id}"


# -- telling people ----------------------------------------------------------------------------


def announce(db: Database, incident_id: str, cfg: IncidentConfig, available: set[str],
             now: datetime, queue_url: str, brands: Mapping[str, Brand] | None = None) -> int:
    """Queue what the destinations have not been told about ``incident_id`` yet; returns
    alerts queued. Call inside the transaction that recorded its members."""
    incident = store.load(db, incident_id)
    new = store.unannounced(db, incident_id)
    if incident is None or not new:
        return 0
    wanted = cfg.destinations or store.member_destinations(db, incident_id)
    dests = [d for d in wanted if d in available]
    if not dests:
        return 0
    first = first_report(db, incident, cfg, queue_url, brands or {})
    missing = [d for d in dests if report_alert_status(db, first, d) is None]
    queued = enqueue_report(db, first, missing, now) if missing else 0
    told = [d for d in dests if d not in missing]
    if len(missing) == len(dests):  # the first message carries every member so far
        store.mark_announced(db, incident_id, new, now)
        return queued
    if not _due_for_update(db, incident, first, told, cfg, now):
        return queued
    update = update_report(db, incident, first, new, cfg, queue_url, now)
    queued += enqueue_report(db, update, told, now)
    store.mark_announced(db, incident_id, new, now)
    return queued


def _due_for_update(db: Database, incident: IncidentRow, first: Report, told: Sequence[str],
                    cfg: IncidentConfig, now: datetime) -> bool:
    """Every first message settled (delivered or parked), and the last update long enough ago."""
    for dest in told:
        if report_alert_status(db, first, dest) not in (outbox.DELIVERED, outbox.FAILED):
            return False
    last = last_incident_report_at(db, UPDATE_KIND, NAME, incident.brand, incident.id)
    return last is None or now - last >= timedelta(minutes=cfg.update_minutes)


def announce_due(db: Database, cfg: IncidentConfig, available: set[str], now: datetime,
                 queue_url: str, brands: Mapping[str, Brand] | None = None) -> int:
    """Updates whose wait is over (the reports stage runs this every minute)."""
    from storage.tx import immediate

    queued = 0
    for incident_id in store.with_unannounced(db):
        with immediate(db):
            queued += announce(db, incident_id, cfg, available, now, queue_url, brands)
    return queued


# -- what the messages say ---------------------------------------------------------------------


def first_report(db: Database, incident: IncidentRow, cfg: IncidentConfig, queue_url: str,
                 brands: Mapping[str, Brand]) -> Report:
    """The incident's first message: who, how many, since when, what they say."""
    members = store.members(db, incident.id)
    authors = list(dict.fromkeys(str(m["author"]) for m in members if m["author"]))
    link = incident_link(queue_url, incident.id)
    listed = ", ".join(authors[:CUSTOMERS_LISTED]) + (
        f" and {len(authors) - CUSTOMERS_LISTED:,} more" if len(authors) > CUSTOMERS_LISTED
        else "")
    return Report(
        kind=KIND, name=NAME, brand=incident.brand,
        title=(f"{incident.brand}: {incident.customers:,} customers report the same problem "
               f"({incident.reports:,} posts since {incident.first_at:%H:%M} UTC)"),
        window_start=incident.first_at, window_end=incident.last_at,
        summary=(f"Since {incident.first_at:%Y-%m-%d %H:%M} UTC, {incident.customers:,} "
                 f"different customers posted what looks like one problem. New reports follow "
                 f"as updates to this message; every post stays in the queue: {link}"),
        facts=[("Customers", f"{incident.customers:,}"), ("Reports", f"{incident.reports:,}"),
               ("First report", f"{incident.first_at:%Y-%m-%d %H:%M} UTC"),
               ("Latest report", f"{incident.last_at:%Y-%m-%d %H:%M} UTC"),
               ("Queue", link), ("Customers so far", listed or "—")],
        terms=_terms(db, members, incident.brand, brands),
        example_post_ids=_examples(members, cfg.examples),
        numbers={"incident": incident.id, "customers": incident.customers,
                 "reports": incident.reports, "first_at": to_iso(incident.first_at),
                 "latest_at": to_iso(incident.last_at), "queue_url": link, "authors": authors,
                 "post_ids": [m["id"] for m in members]},
        priority="high", key=f"incident\x1f{incident.id}",
    )


def update_report(db: Database, incident: IncidentRow, first: Report, new: Sequence[int],
                  cfg: IncidentConfig, queue_url: str, now: datetime) -> Report:
    """More reports of an incident the destinations already know about."""
    members = store.members(db, incident.id)
    fresh = [m for m in members if m["id"] in set(new)]
    link = incident_link(queue_url, incident.id)
    return Report(
        kind=UPDATE_KIND, name=NAME, brand=incident.brand,
        title=(f"{incident.brand} incident: {len(fresh):,} more report"
               f"{'s' * (len(fresh) != 1)} — {incident.customers:,} customers, "
               f"{incident.reports:,} posts in all"),
        window_start=min(parse_iso(str(m["created_at"])) for m in fresh),
        window_end=now,
        summary=f"Latest report {incident.last_at:%H:%M} UTC. Queue: {link}",
        facts=[("New reports", f"{len(fresh):,}"), ("Customers", f"{incident.customers:,}"),
               ("Reports", f"{incident.reports:,}"),
               ("Latest report", f"{incident.last_at:%Y-%m-%d %H:%M} UTC"), ("Queue", link)],
        example_post_ids=_examples(fresh, cfg.examples),
        numbers={"incident": incident.id, "new_post_ids": [m["id"] for m in fresh],
                 "customers": incident.customers, "reports": incident.reports,
                 "latest_at": to_iso(incident.last_at), "queue_url": link},
        priority="high", key=f"incident-update\x1f{incident.id}\x1f{to_iso(now)}",
        parent_id=first.id,
    )


def incident_link(queue_url: str, incident_id: str) -> str:
    """The dashboard's queue filtered to the incident's posts."""
    return f"{queue_url.rstrip('/')}/queue?incident={incident_id}&status=all"


def _examples(members: Sequence[Mapping[str, object]], limit: int) -> list[int]:
    """The first and the latest report, then the most urgent of the rest."""
    if not members:
        return []
    picked = [members[0]["id"], members[-1]["id"]]
    rest = sorted(members[1:-1], key=lambda m: -float(m["urgency"] or 0.0))  # type: ignore[arg-type]
    picked += [m["id"] for m in rest]
    return [int(pid) for pid in dict.fromkeys(picked)][:limit]  # type: ignore[call-overload]


def _terms(db: Database, members: Sequence[Mapping[str, object]], brand: str,
           brands: Mapping[str, Brand]) -> list[str]:
    """Words the incident's posts use more than the brand's other posts of the last day."""
    ids = [int(m["id"]) for m in members][:2000]  # type: ignore[call-overload]
    texts = store.member_texts(db, ids)
    first = parse_iso(str(members[0]["created_at"]))
    background = first_brand_texts(db, brand or None, first - timedelta(days=1), first)
    query = brands.get(brand)
    exclude = [t.text for t in positive_terms(query.query)] if query else []
    return top_terms(texts, background, exclude=[*exclude, brand])
