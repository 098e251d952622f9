"""Do corrections teach the model? A brand's labelled posts, 200 of them fed back as reviewers'
corrections, macro-recall on the others before and after retraining (issue 18).

    python bench/corrections.py [--data ../shared/data] [--corrections 200] [--seeds 18 ...]
                                [--replay-rows 4000] [--device auto] [--json out.json]

The "brand" is the TweetEval sentiment val set (``sentiment/val.tsv``, 2,000 English tweets):
no labelled set of one brand's posts exists in ../shared/data (complaints/ is the urgency
head's training data, multilingual/english/ is mostly this same val set). ``--corrections``
of them, drawn with ``--seed``, become feedback rows on posts in a throwaway SQLite database —
stored, scored and reviewed through the real storage verbs (``store_page``, ``save_scores``,
``add_feedback``) — and ``listener.retraining.retrain_from_feedback`` retrains on them exactly
as ``listener train --from-feedback`` does: its own held-out split of the reviewed posts (30 %),
the English val set (val.tsv less the corrected posts: here the same 1,800 "other" posts) and
its promotion rule. Printed: macro-recall on the other posts before (the committed model) and
after (the candidate, promoted or not), the held-out reviewed figures, the English val figure,
the decision, and accuracy per model version on the reviewed posts once the promoted model has
scored them (``storage.feedback.accuracy_by_version``, what the overview shows).

Caveat: the committed model chose its epochs and adapter on this very val set, so "before" is
its best case; and these tweets come from the distribution the model was trained on, so a
brand whose posts differ from it (its product names, its customers' slang) has more to gain.
Every text is embedded once (~6,000 with the defaults: ~4 minutes on 2 busy CPU cores); each
further ``--seeds`` draw costs a training (~30 s). With several draws the spread shows how much
of a single figure is the draw: 57 held-out posts judge the candidate, one post ~1.3 points.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PLATFORM = "tweeteval"


class CachedEncoder:
    """An Encoder that embeds each distinct text once (the bench asks for the same val texts
    as "before", "after" and the retraining's English val set)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.device, self.memo = encoder, encoder.device, {}

    def embed(self, texts: Sequence[str], *, batch_size: int = 64,
              progress: bool = False) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if new:
            for text, row in zip(new, self.encoder.embed(new, batch_size=batch_size),
                                 strict=True):
                self.memo[text] = row
        return (np.stack([self.memo[t] for t in texts]) if texts
                else np.zeros((0, self.encoder.dim), np.float32))


def macro_recall(gold: Sequence[str], predicted: Sequence[str]) -> float:
    from classifiers.base import SENTIMENT_LABELS

    g, p = np.array(gold), np.array(predicted)
    return float(np.mean([(p[g == k] == k).mean() for k in SENTIMENT_LABELS if (g == k).any()]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--corrections", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[18],
                        help="which posts are corrected; several: one draw each")
    parser.add_argument("--replay-rows", type=int, default=None,
                        help="committed sentiment rows replayed (default: the setting's, 4000)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch

    from classifiers.artifacts import DEFAULT_HEADS_DIR, adapter_path, artifacts_version, read_meta
    from classifiers.corrections import RetrainSettings
    from classifiers.evaluate import read_labelled_tsv
    from classifiers.heads_train import head_logits
    from classifiers.normalize import NormalizeSettings, normalize_texts
    from classifiers.postprocess import postprocess
    from classifiers.transformer import Encoder, load_heads
    from listener.core.models import Page, Post, Score
    from listener.retraining import retrain_from_feedback
    from storage import db as store
    from storage import feedback

    meta = read_meta(DEFAULT_HEADS_DIR)
    enc = meta["encoder"]
    encoder = CachedEncoder(Encoder(device=args.device, pooling=enc["pooling"],
                                    max_length=int(enc["max_length"]),
                                    adapter=adapter_path(DEFAULT_HEADS_DIR, meta)))
    norm = NormalizeSettings.from_dict(meta["normalize"])
    current = load_heads(DEFAULT_HEADS_DIR, meta, encoder.device)
    version = artifacts_version(DEFAULT_HEADS_DIR)

    brand = read_labelled_tsv(args.data / "sentiment" / "val.tsv")
    x = encoder.embed(normalize_texts([r["text"] for r in brand], norm))

    def predict(heads: dict[str, Any], conf: dict[str, Any]) -> list[Any]:
        with torch.inference_mode():
            s = head_logits(heads["sentiment"], x, encoder.device)
            u2 = head_logits(heads["urgency"], x, encoder.device)
        i = conf["urgency"]["labels"].index(conf["urgency"]["positive"])
        return postprocess(s, u2[:, i] - u2[:, 1 - i], float(conf["sentiment"]["temperature"]),
                           tuple(conf["sentiment"]["labels"]),
                           urgency_temperature=float(conf["urgency"]["temperature"]))

    def score_rows(ids: list[int], preds: list[Any], model_version: str) -> list[Any]:
        return [(pid, Score(p.sentiment, p.probabilities["negative"], p.probabilities["neutral"],
                            p.probabilities["positive"], p.urgency, "default", model_version,
                            lang="en"), "en") for pid, p in zip(ids, preds, strict=True)]

    gold = [r["label"] for r in brand]
    before = predict(current, meta)

    def recall(preds: list[Any], rows: list[int]) -> float:
        return 100 * macro_recall([gold[i] for i in rows], [preds[i].sentiment for i in rows])

    def run(seed: int) -> tuple[dict[str, Any], Any, list[Any]]:
        """One draw of the corrected posts: store, review, retrain; the figures."""
        order = np.random.default_rng(seed).permutation(len(brand))
        corrected = sorted(int(i) for i in order[: args.corrections])
        others = sorted(int(i) for i in order[args.corrections:])
        with tempfile.TemporaryDirectory(prefix="bench-corrections-") as tmp:
            db = store.open_db(Path(tmp) / "brand.db")
            posts = [Post(platform=PLATFORM, platform_id=r["id"], text=r["text"],
                          created_at=NOW, source="bench", brand="tweeteval", lang="en")
                     for r in brand]
            store.store_page(db, "bench", Page(posts=posts), NOW)
            ids = {r["platform_id"]: int(r["id"]) for r in db.query(
                "SELECT id, platform_id FROM posts")}
            post_ids = [ids[r["id"]] for r in brand]
            store.save_scores(db, score_rows(post_ids, before, version), NOW)
            for i in corrected:  # the reviewers' verdicts: the gold label, right or wrong
                feedback.add_feedback(db, post_ids[i], "sentiment", gold[i], "bench", NOW)
            settings = RetrainSettings(device=args.device, **(
                {"replay_rows": args.replay_rows} if args.replay_rows else {}))
            outcome = retrain_from_feedback(
                db, Path(tmp) / "models", args.data, NOW, actor="bench", settings=settings,
                encoder=encoder, log_line=lambda line: print(f"  {line}", file=sys.stderr,
                                                             flush=True))
            assert outcome.candidate is not None, outcome.table()
            heads, new_meta = outcome.candidate
            after = predict(heads, new_meta)
            if outcome.promoted:  # as the classify stage would: the new version's scores
                store.save_scores(db, score_rows(post_ids, after, str(outcome.version)), NOW)
            by_version = feedback.accuracy_by_version(db)
            db.close()
        figures = {
            "seed": seed, "corrections": len(corrected), "others": len(others),
            "others_before": round(recall(before, others), 2),
            "others_after": round(recall(after, others), 2),
            "all_val_before": round(recall(before, list(range(len(brand)))), 2),
            "all_val_after": round(recall(after, list(range(len(brand)))), 2),
            "decision": outcome.decision, "version": outcome.version,
            "audit_detail": outcome.detail(),
            "accuracy_by_version": [
                {"model_version": a.model_version, "field": a.field, "reviewed": a.reviewed,
                 "correct": a.correct, "held_out_reviewed": a.held_out_reviewed,
                 "held_out_correct": a.held_out_correct} for a in by_version],
        }
        return figures, outcome, by_version

    runs = []
    given = sys.argv[1:] if argv is None else list(argv)
    print(f"command: python bench/corrections.py {shlex.join(given)}".rstrip())
    print(f"brand: TweetEval sentiment val (sentiment/val.tsv), {len(brand)} posts: "
          f"{args.corrections} fed back as corrections, {len(brand) - args.corrections} "
          f"others; model {version}")
    for n, seed in enumerate(args.seeds):
        figures, outcome, by_version = run(seed)
        runs.append(figures)
        sentiment = outcome.heads[0]
        print(f"seed {seed}: others {figures['others_before']:.1f} → "
              f"{figures['others_after']:.1f} "
              f"({figures['others_after'] - figures['others_before']:+.1f}); held-out reviewed "
              f"{100 * (sentiment.current or 0):.1f} → {100 * (sentiment.candidate or 0):.1f} "
              f"({sentiment.held_out} posts); English val {100 * (outcome.english_current or 0):.1f}"
              f" → {100 * (outcome.english_candidate or 0):.1f}; {outcome.decision}", flush=True)
        if n == 0:
            print(f"all {len(brand)} val posts (corrected ones included): "
                  f"{figures['all_val_before']:.1f} → {figures['all_val_after']:.1f}")
            print(outcome.table())
            print("accuracy on reviewed posts per model version [held-out part]:")
            for a in by_version:
                held = (f"{a.held_out_correct}/{a.held_out_reviewed}" if a.held_out_reviewed
                        else "—")
                print(f"  {a.model_version:<20} {a.field:<10} {a.correct}/{a.reviewed} "
                      f"= {100 * (a.share or 0):.1f} %  [{held}]")
    deltas = [r["others_after"] - r["others_before"] for r in runs]
    promoted = [d for r, d in zip(runs, deltas, strict=True) if r["decision"] == "promoted"]
    if len(runs) > 1:
        print(f"over {len(runs)} draws: others {np.mean(deltas):+.2f} points on average "
              f"({min(deltas):+.2f} … {max(deltas):+.2f}); promoted {len(promoted)} times"
              + (f", those {np.mean(promoted):+.2f} on average ({min(promoted):+.2f} … "
                 f"{max(promoted):+.2f})" if promoted else ""))
    print(f"{time.perf_counter() - started:.0f}s in all")
    if args.json:
        args.json.write_text(json.dumps({"brand": "TweetEval sentiment val", "runs": runs},
                                        indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
