"""Alert rules: conditions over a post and its score, each routed to named destinations.

A condition is a mapping whose keys must all hold (AND); ``all``, ``any`` and ``not`` nest
conditions for anything more complex. Evaluation is pure, so rules are tested on plain values.

A post's language is the one it was scored as (:attr:`Score.lang`: the platform's tag or the
detected one), else the post's own ``lang``. ``languages`` compares codes case-insensitively and
by their primary subtag too (``pt`` matches ``pt-BR``). ``und`` (too short to tell) is a language
like any other: ``languages: [es]`` does not match it, ``languages: [und]`` does. A post with no
language at all (stored before languages were detected, and never scored with one) matches any
``languages``: nothing says it is in another language, and dropping it would silence a rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from alerts.quiet import QuietHours
from listener.core.models import Post, Score

Label = Literal["negative", "neutral", "positive"]
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def _language_code(code: str) -> str:
    """A rule's language as posts carry it: an ISO 639 code (``es``, ``pt-BR``), lower case,
    ``-`` between subtags. A name such as ``Spanish`` would silently never match, so it is
    refused on its own key."""
    if not _LANGUAGE_CODE.fullmatch(code):
        raise ValueError(f"{code!r} is not a language code: use ISO 639-1 codes such as es or "
                         "de, or und for posts too short to tell")
    return code.lower().replace("_", "-")


LanguageCode = Annotated[str, AfterValidator(_language_code)]


def post_language(post: Post, score: Score) -> str | None:
    """The language a post was scored as (else its own tag), lower case; None when unknown."""
    language = (score.lang or post.lang or "").strip().lower().replace("_", "-")
    return language or None


class Condition(BaseModel):
    """What a post must look like to match. Every key given must hold; an empty one matches all."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    sentiment: list[Label] | None = Field(
        None,
        description="sentiment labels; alone: the predicted label is one of them; with "
        "min_probability: the summed probability of these labels reaches it",
    )
    min_probability: float | None = Field(None, ge=0, le=1, description="see sentiment")
    min_urgency: float | None = Field(None, ge=0, le=1, description="urgency score at least")
    keywords: list[str] | None = Field(
        None, description="any of these words/phrases appears (case-insensitive, whole words)"
    )
    sources: list[str] | None = Field(None, description="collected by one of these sources")
    brands: list[str] | None = Field(None, description="post's brand is one of these")
    platforms: list[str] | None = Field(None, description="post's platform is one of these")
    languages: list[LanguageCode] | None = Field(
        None, description="post's language is one of these: ISO 639-1 codes such as es or de, "
        "'und' for posts too short to tell (posts with no language recorded match)"
    )
    unsupported_language: bool | None = Field(
        None, description="true: only posts in a language no configured model understands "
        "(their sentiment and urgency are a guess: a person must read them); false: only posts "
        "a model understands"
    )
    min_followers: int | None = Field(None, ge=0, description="author's followers at least (reach)")
    max_rating: float | None = Field(None, ge=0, le=5, description="review rating at most")
    all_: list[Condition] | None = Field(None, alias="all", description="every one holds")
    any_: list[Condition] | None = Field(None, alias="any", description="at least one holds")
    not_: Condition | None = Field(None, alias="not", description="this one does not hold")

    @field_validator("sentiment", "keywords", "sources", "brands", "platforms", "languages",
                     mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @cached_property
    def _keyword_re(self) -> re.Pattern[str] | None:
        if not self.keywords:
            return None
        alternatives = "|".join(re.escape(k.strip()) for k in self.keywords if k.strip())
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def matches(self, post: Post, score: Score) -> bool:
        if self.sentiment is not None and not self._sentiment_ok(score):
            return False
        if self.min_urgency is not None and score.urgency < self.min_urgency:
            return False
        if self._keyword_re is not None and not self._keyword_re.search(post.text):
            return False
        if self.sources is not None and post.source not in self.sources:
            return False
        if self.brands is not None and not (set(post.brands or ("",)) & set(self.brands)):
            return False  # a post about two brands matches a rule of either
        if self.platforms is not None and post.platform not in self.platforms:
            return False
        if self.languages is not None and not self._language_ok(post, score):
            return False
        if (self.unsupported_language is not None
                and score.language_supported == self.unsupported_language):
            return False  # true wants language_supported False, and false wants it True
        if self.min_followers is not None and (post.author_followers or 0) < self.min_followers:
            return False
        if self.max_rating is not None and (post.rating is None or post.rating > self.max_rating):
            return False
        if self.all_ is not None and not all(c.matches(post, score) for c in self.all_):
            return False
        if self.any_ is not None and not any(c.matches(post, score) for c in self.any_):
            return False
        return not (self.not_ is not None and self.not_.matches(post, score))

    def _language_ok(self, post: Post, score: Score) -> bool:
        """See the module docstring: the scored language, then the post's; none matches."""
        language = post_language(post, score)
        if language is None:
            return True
        wanted = set(self.languages or ())  # lower case already (_language_code)
        return language in wanted or language.split("-")[0] in wanted

    def _sentiment_ok(self, score: Score) -> bool:
        labels = self.sentiment or []
        if self.min_probability is None:
            return score.sentiment in labels
        probs = {"negative": score.p_negative, "neutral": score.p_neutral,
                 "positive": score.p_positive}
        return sum(probs[label] for label in labels) >= self.min_probability

    def source_refs(self, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
        """Every source name this condition mentions, with its key path (for config checks)."""
        for i, name in enumerate(self.sources or []):
            yield (*loc, "sources", i), name
        for key, children in (("all", self.all_), ("any", self.any_)):
            for i, child in enumerate(children or []):
                yield from child.source_refs((*loc, key, i))
        if self.not_ is not None:
            yield from self.not_.source_refs((*loc, "not"))


class AlertCap(BaseModel):
    """At most ``count`` alerts per destination in any ``per_seconds`` window (alert fatigue)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, description="alerts allowed per window and destination")
    per_seconds: float = Field(gt=0, description="the window, in seconds")


class RuleConfig(BaseModel):
    """One alert rule: when its condition holds, alert each of its destinations once per post."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique rule name")
    when: Condition = Field(default_factory=Condition, description="the condition")
    destinations: list[str] = Field(min_length=1, description="destination names")
    enabled: bool = Field(True, description="false keeps the rule but never fires it")
    dry_run: bool = Field(
        False, description="record the alerts (status dry_run, see `listener alerts list`), "
        "never send them: try a rule before it pages anyone"
    )
    max_alerts: AlertCap | None = Field(
        None, description="cap per destination and window; alerts over it are kept as "
        "'suppressed' (visible, never sent)"
    )
    quiet_hours: QuietHours | None = Field(
        None, description="alerts decided in these local hours are kept as 'held' and sent as "
        "one report when the quiet hours end"
    )
    max_post_age_hours: float | None = Field(
        48, gt=0, description="posts older than this (imports, backfills, a source catching up) "
        "are stored, counted and queued for people but never alerted by this rule; null: any age"
    )

    def too_old(self, post: Post, now: datetime) -> bool:
        """History is not news: a backfill of last month must not page anyone."""
        limit = self.max_post_age_hours
        return limit is not None and post.created_at < now - timedelta(hours=limit)


def rank(score: Score, post: Post) -> float:
    """Urgency × reach, as the dashboard's queue ranks: reach is the number of digits of the
    follower count (0-9 → 1, 1,000 → 4, 1M → 7). What a cap keeps and dispatch sends first."""
    return score.urgency * len(str(max(post.author_followers or 0, 0)))


def priority(score: Score, post: Post) -> str:
    """Urgency × reach → high / normal / low, so ticket sinks can order the queue."""
    reach = post.author_followers or 0
    weight = score.urgency * (1.5 if reach >= 10_000 else 1.0)
    if weight >= 0.75 or (score.sentiment == "negative" and reach >= 100_000):
        return "high"
    return "normal" if weight >= 0.4 else "low"
