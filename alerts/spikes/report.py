"""What a spike alert says: title, numbers, top terms of the window and example posts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from alerts.spikes.config import SpikeConfig
from alerts.spikes.stats import (
    EXTREME_RATIO,
    NEGATIVE,
    SENSITIVITY_P,
    VOLUME,
    Verdict,
)
from alerts.terms import top_terms
from listener.core.models import Report, to_iso
from listener.core.query import Brand, positive_terms
from storage.windows import series_examples, series_texts

WINDOW_TEXTS, BACKGROUND_TEXTS, EXAMPLES = 2000, 5000, 5  # caps on what is read


def build_report(
    db: Database, det: SpikeConfig, brand: str | None, source: str | None, end: datetime,
    verdict: Verdict, kinds: Sequence[str], query: Brand | None,
) -> Report:
    """The report for the spike kinds that are due (the other test's numbers come along)."""
    start = end - timedelta(hours=1)
    baseline_start = end - timedelta(hours=det.baseline_hours + 1)
    texts = series_texts(db, brand, source, start, end, WINDOW_TEXTS)
    others = series_texts(db, brand, source, baseline_start, start, BACKGROUND_TEXTS)
    examples = series_examples(db, brand, source, start, end, EXAMPLES)
    label = (brand or "posts without a brand") + (f" on {source}" if source else "")
    parts = [_headline(kind, verdict) for kind in kinds]
    extreme = VOLUME in kinds and verdict.volume and verdict.volume.ratio >= EXTREME_RATIO
    high = NEGATIVE in kinds or bool(extreme)
    return Report(
        kind="spike", name=det.name, title=f"{label}: " + "; ".join(parts),
        window_start=start, window_end=end, brand=brand, source=source,
        summary=f"The hour {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC against {_baseline(det)}.",
        facts=_facts(verdict, det),
        terms=top_terms(texts, others, exclude=_own_terms(brand, source, query)),
        example_post_ids=examples,
        numbers=_numbers(verdict, kinds, start, end, det),
        priority="high" if high else "normal",
    )


def _headline(kind: str, verdict: Verdict) -> str:
    if kind == VOLUME and verdict.volume:
        v = verdict.volume
        return (f"{v.posts} posts in the last hour (usual {_count(v.expected)})"
                f" — {v.ratio:.1f}×")
    n = verdict.negative
    if kind == NEGATIVE and n:
        return f"negative share {n.share:.0%} (usual {n.baseline_share:.0%})"
    return kind


def _count(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _baseline(det: SpikeConfig) -> str:
    if det.seasonal:
        return f"the same time of day over the previous {det.baseline_hours // 24} days"
    return f"every hour of the previous {det.baseline_hours} hours"


def _facts(verdict: Verdict, det: SpikeConfig) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    v, n = verdict.volume, verdict.negative
    if v is not None:
        facts += [("posts", f"{v.posts} (usual {_count(v.expected)}, {v.ratio:.1f}×)"),
                  ("volume p-value", _p(v.p_value))]
    if n is not None:
        facts += [("negative share", f"{n.share:.0%} of {n.scored} scored"
                                     f" (usual {n.baseline_share:.0%})"),
                  ("negative share z", f"{n.z:.1f} (p-value {_p(n.p_value)})")]
    facts += [("baseline", _baseline(det)),  # every sink shows the window itself
              ("sensitivity", f"{det.sensitivity} (p < {SENSITIVITY_P[det.sensitivity]:g})")]
    return facts


def _p(p_value: float) -> str:
    return f"{p_value:.1e}" if p_value >= 1e-300 else "< 1e-300"


def _numbers(verdict: Verdict, kinds: Sequence[str], start: datetime, end: datetime,
             det: SpikeConfig) -> dict[str, Any]:
    """The same figures, machine-readable (webhook JSON); ``spikes`` drives cooldowns."""
    numbers: dict[str, Any] = {
        "spikes": list(kinds), "window_start": to_iso(start), "window_end": to_iso(end),
        "baseline_hours": det.baseline_hours, "seasonal": det.seasonal,
        "p_threshold": SENSITIVITY_P[det.sensitivity],
    }
    v, n = verdict.volume, verdict.negative
    if v is not None:
        numbers |= {"posts": v.posts, "expected_posts": round(v.expected, 2),
                    "ratio": round(v.ratio, 2), "dispersion": round(v.dispersion, 4),
                    "volume_p": v.p_value}
    if n is not None:
        numbers |= {"scored": n.scored, "negative": n.negative,
                    "negative_share": round(n.share, 4),
                    "baseline_negative_share": round(n.baseline_share, 4),
                    "negative_z": round(n.z, 2), "negative_p": n.p_value}
    return numbers


def _own_terms(brand: str | None, source: str | None, query: Brand | None) -> list[str]:
    """Words every post of the series has anyway: the brand, its query terms, the source."""
    own = [w for w in (brand, source) if w]
    if query is not None:
        own += [term.text.rstrip("*") for term in positive_terms(query.query)]
    return own
