"""Corrections teach the model (issue 18): retrain the default model's heads on what reviewers
said, and serve the result only when it is better.

Reviewers' verdicts (``storage.feedback.reviewed_posts``: each reviewed post's newest
sentiment and urgency label, split for good into a training part and a held-out part by a hash
of the post) come in as plain rows — this package does not read the database. Then:

1. **Too few?** A head is retrained only when its field has at least ``min_reviewed`` reviewed
   posts (both parts together, English posts only: the encoder is English); with no such field
   nothing is trained and the outcome says why. A head with too few keeps its weights.
2. **Train** — heads only, on the encoder as committed (the LoRA adapter merged, frozen), so a
   run takes minutes on a CPU. Each retrained head starts from the active model's weights
   (warm start) and is trained a few epochs on a replay sample of the committed training data
   (``sentiment/train.tsv``, ``complaints/train.tsv``) plus the reviewed posts' training part,
   each reviewed post weighing ``reviewed_weight`` committed rows. Training from scratch would
   lose the fine-tuning the committed head got with the adapter (a fresh head on the same
   features scores lower on the English val set); a warm start keeps it and moves towards what
   reviewers said. The sentiment head's temperature is fitted again on the English val set,
   as the committed recipe does (it moves no label); the urgency head keeps its temperature.
3. **Judge** — the active model and the candidate on the same features: macro-recall of each
   retrained head on the held-out reviewed posts (its own labels: three sentiments; complaint
   at p >= 0.5 or not, as the triage queue reads it), and of the sentiment head on the English
   val set (``sentiment/val.tsv``; rows whose text a reviewed post has are left out, so a
   correction never grades itself).
4. **Promote** only when every retrained head does at least as well on the held-out reviewed
   posts and one does better (by more than ``min_gain`` points: 0 by default; ~55 held-out
   posts cannot tell a point from noise, see bench/README.md), and the English val
   macro-recall dropped by at most ``max_english_drop`` points (0.5). The candidate is written to ``<models_dir>/<version>/``
   with its version (promotion date + content hash) in its ``heads.json`` and made active
   (:mod:`classifiers.model_store`); otherwise nothing is written and the reasons say why.

:func:`retrain` is the whole run; ``listener.retraining`` feeds it from the database, records the
decision in the audit log, and is what ``listener train --from-feedback`` and the daemon call.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from classifiers.artifacts import adapter_path, artifacts_version, read_meta
from classifiers.calibration import fit_temperature
from classifiers.evaluate import read_labelled_tsv
from classifiers.normalize import NormalizeSettings, normalize_texts
from listener.core.errors import ClassifierError

FIELDS = ("sentiment", "urgency")
ENGLISH = (None, "", "en", "und")  # post languages the English encoder is trained for
PROMOTED, KEPT, SKIPPED, DRY_RUN = "promoted", "kept", "skipped", "dry-run"


class ReviewedRow(Protocol):
    """One reviewed post's label for one field (``storage.feedback.ReviewedPost`` is one)."""

    @property
    def field(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def held_out(self) -> bool: ...


@dataclass(frozen=True)
class RetrainSettings:
    """How a retraining is judged and run; the defaults are what bench/corrections.py measured."""

    min_reviewed: int = 50  # reviewed posts of a field (both parts) before its head is retrained
    max_english_drop: float = 0.5  # points of English val macro-recall a promotion may cost
    min_gain: float = 0.0  # points a retrained head must gain on the held-out reviewed posts
    replay_rows: int | None = 4000  # committed sentiment rows replayed (None: all 48k, slow)
    replay_urgency_rows: int | None = None  # committed complaint rows replayed (None: all 2.3k)
    english_val_rows: int | None = None  # sentiment/val.tsv rows judged (None: all 2,000)
    reviewed_weight: float = 4.0  # a reviewed post weighs this many committed rows
    epochs: int = 6
    lr: float = 1e-4  # small steps from the active head: 3e-4 already cost ~1 point of val
    weight_decay: float = 1e-2
    batch_size: int = 128  # rows per optimiser step
    embed_batch_size: int = 64
    seed: int = 13
    device: str = "auto"
    english_only: bool = True  # learn from posts in English (or too short to tell) only
    keep_versions: int = 5  # promoted versions kept on disk


@dataclass(frozen=True)
class HeadResult:
    """One head's part of a retraining: its reviewed rows and held-out macro-recall."""

    field: str
    reviewed: int
    trained_on: int  # reviewed rows in the training part
    held_out: int  # reviewed rows in the held-out part
    retrained: bool  # False: too few reviewed posts, the head was kept as it is
    current: float | None = None  # held-out macro-recall, 0..1 (None: not judged)
    candidate: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What a retraining decided and why, with the figures it decided on."""

    decision: str  # promoted, kept, skipped or dry-run
    reasons: tuple[str, ...]
    current_version: str
    version: str | None = None  # the promoted version (None unless promoted)
    heads: tuple[HeadResult, ...] = ()
    english_rows: int = 0
    english_current: float | None = None
    english_candidate: float | None = None
    would_promote: bool = False
    rescore_after_post_id: int | None = None
    seconds: float = 0.0
    # the candidate's heads (task → Head) and JSON, in memory, whatever the decision (None
    # when nothing was trained): for the bench, which scores the brand's other posts with it
    candidate: tuple[dict[str, Any], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False)

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED

    def detail(self) -> dict[str, Any]:
        """The audit entry's detail: small, no post text."""
        def pct(value: float | None) -> float | None:
            return None if value is None else round(100 * value, 2)

        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "current": self.current_version,
            "version": self.version,
            "held_out": {h.field: {"reviewed": h.reviewed, "trained_on": h.trained_on,
                                   "held_out": h.held_out, "retrained": h.retrained,
                                   "current": pct(h.current), "candidate": pct(h.candidate)}
                         for h in self.heads},
            "english_val": {"rows": self.english_rows, "current": pct(self.english_current),
                            "candidate": pct(self.english_candidate)},
            "rescore_after_post_id": self.rescore_after_post_id,
            "seconds": round(self.seconds, 1),
        }

    def table(self) -> str:
        """The comparison the CLI prints: current vs candidate, then the decision."""
        def pct(value: float | None) -> str:
            return "—" if value is None else f"{100 * value:.1f}"

        lines = [f"{'macro-recall':<30} {'current':>8} {'candidate':>10} {'rows':>6}"]
        for h in self.heads:
            note = (f"trained on {h.trained_on} reviewed posts" if h.retrained
                    else f"kept: {h.reviewed} reviewed posts")
            lines.append(f"{'held-out reviewed ' + h.field:<30} {pct(h.current):>8} "
                         f"{pct(h.candidate):>10} {h.held_out:>6}   {note}")
        if self.english_rows:
            lines.append(f"{'English val (sentiment)':<30} {pct(self.english_current):>8} "
                         f"{pct(self.english_candidate):>10} {self.english_rows:>6}")
        head = {PROMOTED: f"promoted {self.version} (was {self.current_version})",
                KEPT: f"kept {self.current_version}", SKIPPED: f"skipped, kept "
                f"{self.current_version}", DRY_RUN: f"dry run: would "
                f"{'promote the candidate' if self.would_promote else 'keep'} "
                f"{'' if self.would_promote else self.current_version}".rstrip()}[self.decision]
        lines.append(f"decision: {head}")
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def macro_recall_present(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (a small held-out set may lack one: a
    class nobody reviewed has no recall to count, rather than a zero)."""
    classes = np.unique(y)
    if not len(classes):
        return 0.0
    return float(np.mean([(pred[y == k] == k).mean() for k in classes]))


def _fold(text: str) -> str:
    return " ".join(text.split())


def _sample(rows: list[dict[str, str]], n: int | None, seed: int) -> list[dict[str, str]]:
    """``n`` rows drawn without replacement (kept in file order); all with ``n`` None."""
    if n is None or n >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n])
    return [rows[i] for i in keep]


def _labels(rows: Sequence[dict[str, str]] | Sequence[ReviewedRow], labels: list[str],
            where: str) -> np.ndarray:
    found = [r["label"] if isinstance(r, dict) else r.label for r in rows]
    unknown = sorted(set(found) - set(labels))
    if unknown:
        raise ClassifierError(f"{where}: unknown label(s) {unknown}; expected {labels}")
    return np.array([labels.index(label) for label in found], dtype=np.int64)


def _skip_reason(name: str, reviewed: int, trained: int, held: int,
                 settings: RetrainSettings) -> str | None:
    """Why a field's head cannot be retrained now, or None."""
    counts = f"{reviewed} reviewed posts ({trained} to train on, {held} held out)"
    if reviewed < settings.min_reviewed:
        return f"{name}: {counts}, fewer than the {settings.min_reviewed} needed"
    if not trained or not held:
        return f"{name}: {counts}; both parts need posts"
    return None


def retrain(
    rows: Sequence[ReviewedRow],
    current_dir: Path,
    models_dir: Path,
    *,
    data_dir: Path,
    now: datetime,
    settings: RetrainSettings = RetrainSettings(),
    dry_run: bool = False,
    rescore_after_post_id: int | Callable[[], int] = 0,
    log: Callable[[str], None] = lambda line: None,
    encoder: Any = None,
) -> Outcome:
    """Retrain the heads of the model in ``current_dir`` on ``rows`` and the committed data
    in ``data_dir``; promote the candidate into ``models_dir`` when it is better (module
    docstring). ``rescore_after_post_id`` goes into ``active.json`` on promotion: the classify
    stage scores posts with greater ids with the new model and leaves older ones be (a callable
    is asked at promotion only: finding the floor scans the posts). ``encoder``: an
    ``classifiers.transformer.Encoder`` already loaded for this model (its adapter merged), to
    reuse one across runs (tests, the bench); by default one is loaded here."""
    started = time.perf_counter()
    current_dir = Path(current_dir)
    current_version = artifacts_version(current_dir)
    usable = [r for r in rows if r.field in FIELDS and (
        not settings.english_only or getattr(r, "lang", None) in ENGLISH)]
    by_field = {name: [r for r in usable if r.field == name] for name in FIELDS}
    results: dict[str, HeadResult] = {}
    skipped: list[str] = []
    for name, group in by_field.items():
        held = sum(r.held_out for r in group)
        reason = _skip_reason(name, len(group), len(group) - held, held, settings)
        results[name] = HeadResult(name, len(group), len(group) - held, held, reason is None)
        if reason:
            skipped.append(reason)
    wanted = [name for name in FIELDS if results[name].retrained]
    if not wanted:
        if settings.english_only and len(usable) < len(rows):
            skipped.append(f"{len(rows) - len(usable)} reviewed posts in other languages "
                           "were left out (the English model learns from English posts)")
        return Outcome(SKIPPED, tuple(skipped), current_version, heads=tuple(results.values()),
                       seconds=time.perf_counter() - started)

    from classifiers.corrections_train import fine_tune_head, write_and_promote
    from classifiers.heads_train import head_logits
    from classifiers.transformer import Encoder, load_heads

    meta = read_meta(current_dir)
    enc = meta["encoder"]
    norm = NormalizeSettings.from_dict(meta["normalize"])
    if encoder is None:
        encoder = Encoder(device=settings.device, expected_sha256=enc["sha256"],
                          max_length=int(enc["max_length"]), pooling=enc["pooling"],
                          adapter=adapter_path(current_dir, meta))
    heads = load_heads(current_dir, meta, encoder.device)
    log(f"model {current_version} from {current_dir}; encoder on {encoder.device}")

    def embed(texts: Sequence[str], what: str) -> np.ndarray:
        began = time.perf_counter()
        x = encoder.embed(normalize_texts(list(texts), norm),
                          batch_size=settings.embed_batch_size)
        log(f"embedded {len(texts)} {what} in {time.perf_counter() - began:.0f}s")
        return x

    data = Path(data_dir)
    reviewed_texts = {_fold(r.text) for r in usable}
    val_rows = [r for r in read_labelled_tsv(data / "sentiment" / "val.tsv")
                if _fold(r["text"]) not in reviewed_texts]
    val_rows = _sample(val_rows, settings.english_val_rows, settings.seed)
    s_labels = list(meta["sentiment"]["labels"])
    val_y = _labels(val_rows, s_labels, "sentiment/val.tsv")
    val_x = embed([r["text"] for r in val_rows], "English val")
    new_heads = dict(heads)
    new_meta = copy.deepcopy(meta)
    new_meta.pop("version", None)  # the parent's, when it was promoted too
    replayed: dict[str, int] = {}
    for name in wanted:
        conf = meta[name]
        labels = list(conf["labels"])
        group = by_field[name]
        train_part = [r for r in group if not r.held_out]
        held_part = [r for r in group if r.held_out]
        source = ("sentiment/train.tsv", settings.replay_rows) if name == "sentiment" else (
            "complaints/train.tsv", settings.replay_urgency_rows)
        replay = _sample(read_labelled_tsv(data / source[0]), source[1], settings.seed)
        replayed[source[0]] = len(replay)
        x = np.concatenate([embed([r["text"] for r in replay], source[0]),
                            embed([r.text for r in train_part], f"reviewed {name}")])
        y = np.concatenate([_labels(replay, labels, source[0]),
                            _labels(train_part, labels, f"reviewed {name}")])
        weight = np.concatenate([np.ones(len(replay)),
                                 np.full(len(train_part), settings.reviewed_weight)])
        began = time.perf_counter()
        new_heads[name] = fine_tune_head(
            heads[name], conf, x, y, weight, epochs=settings.epochs, lr=settings.lr,
            weight_decay=settings.weight_decay, batch_size=settings.batch_size,
            seed=settings.seed, balanced=name == "sentiment", device=encoder.device)
        log(f"trained the {name} head on {len(y)} rows in {time.perf_counter() - began:.0f}s")
        held_x = embed([r.text for r in held_part], f"held-out {name}")
        held_y = _labels(held_part, labels, f"held-out {name}")
        scores = [macro_recall_present(held_y, head_logits(h, held_x, encoder.device).argmax(1))
                  for h in (heads[name], new_heads[name])]
        results[name] = HeadResult(name, len(group), len(train_part), len(held_part), True,
                                   scores[0], scores[1])
    english = [macro_recall_present(val_y, head_logits(h, val_x, encoder.device).argmax(1))
               for h in (heads["sentiment"], new_heads["sentiment"])] if len(val_y) else []
    if "sentiment" in wanted and len(val_y):
        logits = head_logits(new_heads["sentiment"], val_x, encoder.device)
        new_meta["sentiment"]["temperature"] = round(fit_temperature(logits, val_y), 4)

    reasons, better = _judge([results[n] for n in wanted], english, settings)
    reasons += skipped
    outcome = Outcome(
        KEPT, tuple(reasons), current_version, heads=tuple(results.values()),
        english_rows=len(val_y), english_current=english[0] if english else None,
        english_candidate=english[1] if english else None, would_promote=better,
        seconds=time.perf_counter() - started, candidate=(new_heads, new_meta))
    if dry_run:
        return replace(outcome, decision=DRY_RUN)
    if not better:
        return outcome
    new_meta["retrain"] = {
        "at": now.isoformat(timespec="seconds"),
        "parent": current_version,
        "reviewed": {h.field: {"trained_on": h.trained_on, "held_out": h.held_out,
                               "retrained": h.retrained} for h in results.values()},
        "replayed": replayed,
        "held_out_macro_recall": {n: {"current": round(results[n].current or 0.0, 4),
                                      "candidate": round(results[n].candidate or 0.0, 4)}
                                  for n in wanted},
        "english_val_macro_recall": {"rows": len(val_y),
                                     "current": round(english[0], 4) if english else None,
                                     "candidate": round(english[1], 4) if english else None},
        "recipe": {"epochs": settings.epochs, "lr": settings.lr,
                   "reviewed_weight": settings.reviewed_weight, "seed": settings.seed},
    }
    floor = rescore_after_post_id() if callable(rescore_after_post_id) else rescore_after_post_id
    version = write_and_promote(models_dir, current_dir, meta, new_meta, new_heads, now,
                                current_version, floor, settings.keep_versions)
    log(f"promoted {version} into {models_dir}")
    return replace(outcome, decision=PROMOTED, version=version, rescore_after_post_id=floor,
                    seconds=time.perf_counter() - started)


def _judge(results: list[HeadResult], english: list[float],
           settings: RetrainSettings) -> tuple[list[str], bool]:
    """The reasons for the decision and whether the candidate is to be promoted."""
    reasons: list[str] = []
    ok = True
    gained = False
    for h in results:
        assert h.current is not None and h.candidate is not None
        delta = 100 * (h.candidate - h.current)
        verdict = ("better" if delta > settings.min_gain else "worse" if delta < 0
                   else "no better" if not settings.min_gain
                   else f"not {settings.min_gain:g} points better")
        reasons.append(f"held-out reviewed {h.field}: {100 * h.current:.1f} → "
                       f"{100 * h.candidate:.1f} ({delta:+.1f} points, {verdict}; "
                       f"{h.held_out} posts)")
        ok &= delta >= 0
        gained |= delta > settings.min_gain
    if not gained:
        ok = False
    if english:
        drop = 100 * (english[0] - english[1])
        fine = drop <= settings.max_english_drop + 1e-9
        reasons.append(f"English val: {100 * english[0]:.1f} → {100 * english[1]:.1f} "
                       f"({-drop:+.1f} points; at most -{settings.max_english_drop:g} allowed"
                       f"{'' if fine else ': too much lost'})")
        ok &= fine
    return reasons, ok
