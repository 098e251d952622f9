"""bench/gpu_speed.py runs on a CPU too, so the GPU benchmark cannot rot between GPU sessions.

Nothing here is timed: the figures only mean something on a GPU (see bench/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import gpu_speed

POSTS = [
    ("negative", "@AcmeHelp my order never arrived and nobody answers"),
    ("positive", "I love this, best purchase ever 😍"),
    ("neutral", "is the store open on sunday?"),
    ("negative", "worst update ever, the app crashes on start"),
    ("positive", "thanks for the quick fix!"),
    ("neutral", "new version out today http://x.co/1"),
]


def test_the_gpu_benchmark_runs_its_rows_on_a_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "posts.tsv"
    lines = ["id\tlabel\ttext"] + [f"p{i}\t{label}\t{text}" for i, (label, text) in enumerate(POSTS)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["--data", str(data), "--device", "cpu", "--precision", "bfloat16", "--repeat", "3"]
    assert gpu_speed.main([*argv, "--chunk", "4", "--max-tokens", "16", "4096"]) == 0
    out = capsys.readouterr().out
    assert "6 posts x 3; device CPU (not a GPU figure)" in out
    for row in ("end-to-end", "end-to-end, 2 threads", "end-to-end, 2 threads, 1 ms",
                "end-to-end, 2 threads, 0.2 ms", "device, 16 tokens", "device, 4096 tokens",
                "tokenise only"):
        assert f"{row} " in out and " 18 " in out.split(row)[1].splitlines()[0]
    assert "at bfloat16" in out and "at float32" in out and "same label on" in out


def test_without_cuda_it_says_where_to_run_it(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gpu_speed.main(["--device", "cuda"]) == 2
    assert "no CUDA device here" in capsys.readouterr().out
