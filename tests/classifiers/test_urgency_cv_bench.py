"""bench/urgency_cv.py on a small hand-made complaints file (the real one is in ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import urgency_cv

COMPLAINTS = [
    "@AcmeHelp my order never arrived and nobody answers",
    "@AcmeHelp the app crashes every time I open it, fix this",
    "@AcmeHelp charged twice for one order, I want a refund",
    "@AcmeHelp third time my parcel is late, unacceptable",
]
OTHERS = [
    "@AcmeHelp thanks, that solved it!",
    "@AcmeHelp what time do you open on sunday?",
    "lovely weather for a walk today",
    "@AcmeHelp great service as always",
]


def test_it_prints_one_cv_figure_per_seed_and_their_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"c{i}\tcomplaint\tapparel\t{t} #{i}" for i in range(3) for t in COMPLAINTS]
    rows += [f"n{i}\tnot_complaint\tapparel\t{t} #{i}" for i in range(3) for t in OTHERS]
    (tmp_path / "complaints").mkdir()
    (tmp_path / "complaints" / "train.tsv").write_text(
        "\n".join(["id\tlabel\tdomain\ttext", *rows]) + "\n", encoding="utf-8"
    )
    assert urgency_cv.main(["--data", str(tmp_path), "--seeds", "13", "14"]) == 0
    out = capsys.readouterr().out
    assert "urgency head mlp256, 24 rows" in out
    assert "seed 13: 5-fold CV macro-F1" in out and "seed 14: 5-fold CV macro-F1" in out
    assert "over 2 seeds" in out
