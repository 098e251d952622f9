"""How much the urgency figure depends on the seed: the committed recipe's 5-fold CV per seed.

    python bench/urgency_cv.py [--data ../shared/data] [--seeds 13 14 15 16 17 18]

``listener train`` reports one 5-fold CV macro-F1 for the urgency head, at its seed (13). The
seed sets both the folds and the head's initialisation, and on 2,309 rows that alone moves the
figure by about a point, so a single number says little about a change to the recipe. This
embeds the complaints once with the committed encoder (adapter merged, the heads' own
normalisation and pooling), then runs the committed head's cross-validation once per seed and
prints each figure, the mean and the standard deviation. ~40 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15, 16, 17, 18])
    args = parser.parse_args(argv)

    from classifiers.heads_train import HeadSpec, cross_validate
    from classifiers.train import URGENCY_LABELS, TrainConfig, read_split
    from classifiers.transformer import TransformerClassifier

    model = TransformerClassifier(device="cpu")  # loads encoder, adapter, settings as serving does
    texts, y = read_split(args.data / "complaints" / "train.tsv", URGENCY_LABELS)
    x = model.encoder.embed(model.preprocess(texts))
    head = model.meta["urgency"]
    spec = HeadSpec(int(head["hidden"]), head["input_dropout"], head["dropout"], head["epochs"])
    base = TrainConfig(data_dir=args.data, log=lambda _: None)
    scores = []
    print(f"model {model.version}, urgency head {spec.kind}, {len(y)} rows")
    for seed in args.seeds:
        f1, _ = cross_validate(x, y, spec, replace(base, seed=seed), model.encoder.device)
        scores.append(100 * f1)
        print(f"seed {seed}: {base.cv_folds}-fold CV macro-F1 {scores[-1]:.2f}", flush=True)
    print(f"mean {np.mean(scores):.2f} ± {np.std(scores):.2f} over {len(scores)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
