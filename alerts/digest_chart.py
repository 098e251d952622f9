"""The digest chart: posts per hour (daily) or per day (weekly), stacked by sentiment, as a PNG.

matplotlib is imported inside :func:`render_png` only, so the daemon pays its import time and
memory when a digest is due, not at start-up. It draws on a bare ``Figure`` with the Agg canvas:
no pyplot, so no global figure registry and no GUI backend, and safe in the scheduler's threads.
The PNG carries no software version or timestamp, so the same figures give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

# one colour per sentiment, distinguishable in greyscale and for red-green colour blindness
COLOURS = {"negative": "#c0392b", "neutral": "#b0b7bf", "positive": "#2e86c1",
           "unscored": "#e5e8eb"}
SIZE_INCHES, DPI = (12, 6), 100  # 1200 × 600 pixels: readable in Slack and e-mail


@dataclass(frozen=True)
class ChartData:
    """What to draw; built by :mod:`alerts.digest` from the figures (no database here)."""

    title: str  # "acme — daily digest, Mon 23 Nov"
    subtitle: str  # the headline figures: "1,204 posts (+12%), 23% negative (+5 pts)"
    xlabel: str  # says which time zone the buckets are in
    labels: list[str]  # one per bucket: "09:00" or "Mon 16"
    stacks: dict[str, list[int]]  # sentiment → posts per bucket, drawn bottom-up in this order
    previous: list[int]  # the previous period's posts per bucket, drawn as a line
    previous_label: str  # e.g. "previous day (1,075 posts)"


def render_png(data: ChartData) -> bytes:
    """The chart as PNG bytes (about 30–60 KB)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(range(len(data.labels)))
    bottom = [0] * len(xs)
    for sentiment, counts in data.stacks.items():
        if not any(counts):
            continue  # no empty legend entries (e.g. "unscored" once everything is scored)
        ax.bar(xs, counts, bottom=bottom, width=0.8, color=COLOURS.get(sentiment, "#888888"),
               label=f"{sentiment} ({sum(counts):,})", edgecolor="white", linewidth=0.5)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.plot(xs, data.previous, color="#222222", linestyle="--", linewidth=1.6, marker="o",
            markersize=3, label=data.previous_label)
    fig.suptitle(data.title, x=0.01, ha="left", fontsize=16)
    ax.set_title(data.subtitle, loc="left", fontsize=12, color="#444444", pad=10)
    ax.set_xlabel(data.xlabel, fontsize=11)
    ax.set_ylabel("posts", fontsize=11)
    step = max(1, len(xs) // 12)  # at most ~12 tick labels, so they never overlap
    ax.set_xticks(xs[::step], data.labels[::step], fontsize=10)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_ylim(0, max([*bottom, *data.previous, 1]) * 1.15)
    ticks = ax.yaxis.get_major_locator()
    if isinstance(ticks, MaxNLocator):  # a linear axis's AutoLocator: whole posts only
        ticks.set_params(integer=True)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(loc="outside lower center", fontsize=10, frameon=False, ncols=5)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
