"""The rules stage: new scores → alerts in the outbox, decided once per post and destination.

Per batch of scores not evaluated yet:

1. each post goes through every enabled rule (:mod:`alerts.rules`); a rule skips posts older
   than its ``max_post_age_hours`` (a backfill or import of last month pages nobody), and every
   alert carries its rank (urgency × reach);
2. recent posts are grouped into incidents (:mod:`alerts.incidents`): a member's alerts travel
   in the incident's alert (status ``incident``) instead of paging a person each;
3. the rest get their status: ``dry_run``, ``held`` (quiet hours), ``pending`` — or
   ``suppressed`` over a rule's ``max_alerts`` cap, where the highest-ranked alerts win: a
   higher-ranked alert takes the place of a lower-ranked one that has not been sent yet;
4. alerts, incidents, their announcements and the "evaluated" marks commit in ONE transaction.

Sentence vectors for the incident grouping are computed before the transaction opens (the
model's forward pass must not hold the database's write lock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlite_utils import Database

from alerts import incidents as grouping
from alerts.incidents import Candidate, IncidentConfig
from alerts.rules import RuleConfig, priority, rank
from alerts.similarity import Vectorize, hashed_ngrams
from listener.core.models import Clock, Post, Score
from listener.core.query import Brand
from storage import db as store
from storage import outbox
from storage.tx import immediate

log = logging.getLogger(__name__)
DEFAULT_RECENT_HOURS = 48.0  # posts newer than this may join an incident when no rule says


@dataclass(frozen=True)
class RulesContext:
    """What the rules stage needs besides the rules: the incident settings, the brands (their
    queries mask what every post of a brand says), the text vectors and the dashboard's URL."""

    incidents: IncidentConfig = field(default_factory=IncidentConfig)
    brands: Mapping[str, Brand] = field(default_factory=dict)
    vectorize: Vectorize = hashed_ngrams
    queue_url: str = "http://127.0.0.1:8765"


@dataclass
class RulesOutcome:
    """What a run of the stage did, for its callers' output."""

    alerts: int = 0
    too_old: int = 0  # posts a rule matched but that were older than its max_post_age_hours
    incident_members: int = 0


@dataclass(frozen=True)
class _Decision:
    post_id: int
    score_id: int
    post: Post
    score: Score
    matched: tuple[tuple[RuleConfig, str], ...]  # (rule, destination), recent enough


def evaluate_rules(
    db: Database, rules: Iterable[RuleConfig], destinations: set[str], clock: Clock,
    *, batch_size: int = 500, context: RulesContext | None = None,
    outcome: RulesOutcome | None = None, beat: Callable[[], None] | None = None,
) -> int:
    """Run new scores through the rules; returns alerts added (see the module docstring).
    ``beat`` is called after every batch (the run shows progress)."""
    active = [r for r in rules if r.enabled]
    ctx = context or RulesContext()
    done = outcome if outcome is not None else RulesOutcome()
    while scored := store.scores_to_evaluate(db, batch_size):
        now = clock()  # decision time = created_at: a held alert lies inside its quiet period
        decisions = _decide(scored, active, destinations, now, done)
        candidates = _candidates(decisions, active, now, ctx.incidents)
        with_vectors = (grouping.worth_vectors(db, candidates, _window(ctx.incidents))
                        if ctx.incidents.enabled else [])
        vectors = grouping.vectors_for(with_vectors, ctx.brands, ctx.vectorize)
        with immediate(db):
            found = (grouping.group(db, with_vectors, vectors, ctx.incidents, now)
                     if with_vectors else grouping.Grouping())
            members = found.members
            outbox.fold_into_incident(db, members)
            alerts = _Caps(db, now).apply(_alerts(decisions, members, now))
            added = outbox.enqueue(db, alerts, [s.score_id for s in scored], now)
            for incident_id in found.added:
                added += grouping.announce(db, incident_id, ctx.incidents, destinations, now,
                                           ctx.queue_url, ctx.brands)
        done.alerts += added
        done.incident_members += len(members)
        if beat is not None:
            beat()
    if done.too_old:
        log.info("%d post(s) older than their rules' max_post_age_hours: stored and queued, "
                 "not alerted", done.too_old)
    return done.alerts


def _window(cfg: IncidentConfig) -> timedelta:
    return timedelta(minutes=cfg.window_minutes)


def _decide(scored: Sequence[store.Scored], active: Sequence[RuleConfig],
            destinations: set[str], now: datetime, done: RulesOutcome) -> list[_Decision]:
    """Which (rule, destination) each post matches; posts too old for a rule only counted."""
    out = []
    for item in scored:
        if item.duplicate_of is not None:
            continue  # the same author's cross-post of a post that went through the rules
        post, score = item.post, item.score
        matched = [(rule, dest) for rule in active if rule.when.matches(post, score)
                   for dest in rule.destinations if dest in destinations]
        fresh = tuple((rule, dest) for rule, dest in matched if not rule.too_old(post, now))
        if matched and not fresh:
            done.too_old += 1
        out.append(_Decision(item.post_id, item.score_id, post, score, fresh))
    return out


def _candidates(decisions: Sequence[_Decision], active: Sequence[RuleConfig], now: datetime,
                cfg: IncidentConfig) -> list[Candidate]:
    """Recent posts, once per brand; ``needy`` when one of their alerts would page someone."""
    if not cfg.enabled:
        return []
    ages = [r.max_post_age_hours for r in active if r.max_post_age_hours is not None]
    recent = now - timedelta(hours=max(ages, default=DEFAULT_RECENT_HOURS))
    out = []
    for d in decisions:
        if d.post.created_at < recent:
            continue
        needy = any(_live(rule, now) for rule, _dest in d.matched)
        for brand in d.post.brands or ("",):
            out.append(Candidate(d.post_id, brand, d.post.created_at, d.post.author,
                                 d.post.text, needy))
    return out


def _live(rule: RuleConfig, now: datetime) -> bool:
    """Whether the rule's alerts page someone now (not a dry run, not in quiet hours)."""
    quiet = rule.quiet_hours is not None and rule.quiet_hours.contains(now)
    return not rule.dry_run and not quiet


def _alerts(decisions: Sequence[_Decision], members: set[int], now: datetime
            ) -> list[tuple[outbox.NewAlert, RuleConfig]]:
    """Every alert of the batch, most important first (so caps keep the highest ranked)."""
    out = []
    for d in decisions:
        weight, level = rank(d.score, d.post), priority(d.score, d.post)
        for rule, dest in d.matched:
            status = outbox.INCIDENT if d.post_id in members and _live(rule, now) else None
            out.append((outbox.NewAlert(rule.name, dest, d.post_id, d.score_id, d.post.key,
                                        level, status or outbox.PENDING, weight), rule))
    out.sort(key=lambda item: -item[0].rank)
    return out


class _Caps:
    """Statuses for a batch's alerts; counts alerts per (rule, destination) in each rule's
    window, this batch included. Runs inside the stage's transaction."""

    def __init__(self, db: Database, now: datetime) -> None:
        self.db, self.now = db, now
        self.counts: dict[tuple[str, str], int] = {}

    def apply(self, alerts: Sequence[tuple[outbox.NewAlert, RuleConfig]]
              ) -> list[outbox.NewAlert]:
        out = []
        for alert, rule in alerts:
            status = alert.status if alert.status == outbox.INCIDENT else self.status(
                rule, alert.destination, alert.rank)
            out.append(outbox.NewAlert(alert.rule, alert.destination, alert.post_id,
                                       alert.score_id, alert.post_key, alert.priority, status,
                                       alert.rank))
        return out

    def status(self, rule: RuleConfig, destination: str, weight: float) -> str:
        if rule.dry_run:
            return outbox.DRY_RUN
        if rule.quiet_hours is not None and rule.quiet_hours.contains(self.now):
            return outbox.HELD  # one roll-up report later: no cap needed, none counted
        if rule.max_alerts is None:
            return outbox.PENDING
        key = (rule.name, destination)
        since = self.now - timedelta(seconds=rule.max_alerts.per_seconds)
        if key not in self.counts:
            self.counts[key] = outbox.sent_since(self.db, rule.name, destination, since)
        if self.counts[key] < rule.max_alerts.count:
            self.counts[key] += 1
            return outbox.PENDING
        # the cap binds: take the place of a lower-ranked alert that has not been sent yet
        if outbox.demote_lowest(self.db, rule.name, destination, since, weight) is not None:
            return outbox.PENDING
        return outbox.SUPPRESSED
