"""The default model in eight languages, through the same router the daemon uses.

    python bench/multilingual_eval.py            # ~3 min on 2 cores (the e5 encoder: ~65 posts/s)
    python bench/multilingual_eval.py --tweeteval   # English: TweetEval test through the routing

Prints, for UMSAB val (``../shared/data/multilingual/<language>/val.tsv``, never used to choose
anything in training): macro-recall and macro-F1 per language, with each tweet's language given
(as a platform's tag would) and detected (``listener.core.language``), next to the English-only
model's; the share of the hand-written help requests (``bench/data/help_requests.tsv``, 50 in
es/de/fr/pt/it) with urgency ≥ 0.5, and of UMSAB's positive tweets that look urgent (false
alarms); then the non-English speed and the process's peak RSS.

``--tweeteval`` instead scores TweetEval test (12,284 English tweets) the way the daemon does:
languages detected (as the collect stage does), then the routing (as classify does), both models
warmed up first; it prints macro-recall and posts/s next to the English model alone, and how
many English tweets were routed elsewhere.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.metrics import f1_score, recall_score  # noqa: E402

from classifiers.loader import load_routed  # noqa: E402
from listener.core.language import detect  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multilingual"
HELP = Path(__file__).resolve().parent / "data" / "help_requests.tsv"
TWEETEVAL = DATA.parent / "sentiment" / "test.tsv"
LANGUAGES = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi",
             "italian": "it", "portuguese": "pt", "spanish": "es"}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def macro(gold: list[str], predicted: list[str]) -> str:
    return (f"{recall_score(gold, predicted, average='macro') * 100:.1f} / "
            f"{f1_score(gold, predicted, average='macro') * 100:.1f}")


def tweeteval(path: Path) -> None:
    data = rows(path)
    texts, gold = [r["text"] for r in data], [r["label"] for r in data]
    default = load_routed("default", detect=detect, device="cpu")
    default.predict(["warm up", "calentar el modelo"], ["en", "es"])
    english = default.routes["en"]
    start = time.perf_counter()
    alone = [p for i in range(0, len(texts), 256) for p in english.predict(texts[i:i + 256])]
    alone_s = time.perf_counter() - start
    start = time.perf_counter()
    languages = [detect(t) for t in texts]
    detect_s = time.perf_counter() - start
    start = time.perf_counter()
    routed = [p for i in range(0, len(texts), 256)
              for p in default.predict(texts[i:i + 256], languages[i:i + 256])]
    routed_s = time.perf_counter() - start
    elsewhere = sum(not (p.scored_by or "").startswith(english.name + " ") for p in routed)
    print(f"English model alone: {macro(gold, [p.sentiment for p in alone])} (recall / F1), "
          f"{len(texts) / alone_s:.0f} posts/s")
    print(f"routed, languages detected: {macro(gold, [p.sentiment for p in routed])}, classify "
          f"{len(texts) / routed_s:.0f} posts/s (detection alone {len(texts) / detect_s:.0f} "
          f"posts/s); {elsewhere} tweets routed to another model, "
          f"{sum(not p.language_supported for p in routed)} flagged unsupported")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--tweeteval", nargs="?", type=Path, const=TWEETEVAL,
                        help="score TweetEval test through the routing instead")
    args = parser.parse_args()
    if args.tweeteval:
        tweeteval(args.tweeteval)
        return
    default = load_routed("default", detect=detect, device="cpu")
    english = load_routed("default", {"*": "default-english"}, detect=detect, device="cpu")
    print("| language | tweets | recall / F1, language given | detected | English-only model |")
    print("|---|---|---|---|---|")
    given_recall, seconds, scored, false_alarms = [], 0.0, 0, {}
    for name, code in LANGUAGES.items():
        data = rows(args.data / name / "val.tsv")
        texts, gold = [r["text"] for r in data], [r["label"] for r in data]
        start = time.perf_counter()
        given = default.predict(texts, [code] * len(texts))
        if code != "en":
            seconds, scored = seconds + time.perf_counter() - start, scored + len(texts)
            given_recall.append(recall_score(gold, [p.sentiment for p in given],
                                             average="macro") * 100)
        found = default.predict(texts)
        only = english.predict(texts, ["en"] * len(texts))
        positives = [p for p, g in zip(given, gold, strict=True) if g == "positive"]
        false_alarms[code] = sum(p.urgency >= 0.5 for p in positives) / len(positives) * 100
        print(f"| {code} | {len(texts)} | {macro(gold, [p.sentiment for p in given])} | "
              f"{macro(gold, [p.sentiment for p in found])} | "
              f"{macro(gold, [p.sentiment for p in only])} |")
    print(f"\nmean macro-recall of the 7 non-English languages (given): "
          f"{sum(given_recall) / len(given_recall):.1f}")
    requests = rows(HELP)
    predicted = default.predict([r["text"] for r in requests])
    urgent = sum(p.urgency >= 0.5 for p in predicted)
    before = english.predict([r["text"] for r in requests])
    print(f"help requests (es/de/fr/pt/it, languages detected): {urgent}/{len(requests)} = "
          f"{urgent / len(requests) * 100:.0f} % with urgency >= 0.5 (English-only model: "
          f"{sum(p.urgency >= 0.5 for p in before)}/{len(requests)}); lowest "
          f"{min(p.urgency for p in predicted):.2f}")
    print("UMSAB val positive tweets with urgency >= 0.5 (false alarms): "
          + ", ".join(f"{k} {v:.1f} %" for k, v in false_alarms.items()))
    print(f"non-English speed: {scored / seconds:.0f} posts/s; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
