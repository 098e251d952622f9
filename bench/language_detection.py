"""Language detection on short tweets: accuracy per language, how many come out ``und``, speed.

    python bench/language_detection.py            # UMSAB val, eight languages (~2 s)
    python bench/language_detection.py --lingua   # also lingua-language-detector, if installed

Reads ``../shared/data/multilingual/<language>/val.tsv``. A post counted correct only when the
detector names its language; ``und`` (too short or not confident) counts against it and is
also shown on its own, since for routing it means "score with the default model".
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listener.core.language import UNDETERMINED, detect  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multilingual"
LANGUAGES = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi",
             "italian": "it", "portuguese": "pt", "spanish": "es"}


def texts(folder: Path, language: str) -> list[str]:
    with (folder / language / "val.tsv").open(encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def run(name: str, guess, data: dict[str, list[str]]) -> None:
    start = time.perf_counter()
    print(f"\n{name}\n| language | tweets | correct % | und % |\n|---|---|---|---|")
    for code, items in data.items():
        guesses = [guess(t) for t in items]
        right = sum(g == code for g in guesses) / len(items) * 100
        und = sum(g == UNDETERMINED for g in guesses) / len(items) * 100
        print(f"| {code} | {len(items)} | {right:.1f} | {und:.1f} |")
    total = sum(len(v) for v in data.values())
    print(f"{total / (time.perf_counter() - start):,.0f} tweets/s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def lingua_guess():
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().build()

    def guess(text: str) -> str:
        found = detector.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found is not None else UNDETERMINED

    return guess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--lingua", action="store_true", help="also run lingua (if installed)")
    args = parser.parse_args()
    data = {code: texts(args.data, name) for name, code in LANGUAGES.items()}
    run("py3langid (listener.core.language.detect)", detect, data)
    if args.lingua:
        run("lingua-language-detector, all languages", lingua_guess(), data)


if __name__ == "__main__":
    main()
