"""Peak memory of a process that loads the default model and scores posts, per backend.

    python bench/memory.py [--data PATH] [--posts 1000] [--only BACKEND ...]

Each backend runs in a fresh ``python`` subprocess (imports count: importing torch alone is
~200 MB), which loads the classifier, scores the first ``--posts`` posts in chunks of 256 and
reports its own peak resident set size twice: ``ru_maxrss`` from ``resource.getrusage`` and
``VmHWM`` from ``/proc/self/status`` (the same number on Linux), plus ``VmRSS`` right after
loading. The ONNX cache is built first by a throw-away process, so no child pays for an export.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from classifiers.base import Classifier

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment" / "test.tsv"
CHUNK = 256

BACKENDS = ("torch-fp32", "onnx-fp32", "onnx-int8", "routed-8-languages")
UMSAB = REPO.parent / "shared" / "data" / "multilingual"


def load(backend: str) -> Classifier:
    """The classifier as a daemon would load it (imports inside: they are what we measure)."""
    from classifiers.loader import load_classifier

    if backend == "routed-8-languages":  # what the daemon loads: both halves, by language
        from classifiers.loader import load_routed
        from listener.core.language import detect

        return load_routed("default", detect=detect, backend="onnx", batch_size=32)
    if backend == "torch-fp32":
        return load_classifier("default", batch_size=32, device="cpu", backend="torch")
    if backend == "onnx-int8":  # exactly what `classifier.backend: onnx` loads
        return load_classifier("default", backend="onnx", batch_size=32)
    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(quantize=False)


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` field (``VmHWM``, ``VmRSS``) in MB; NaN where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def child(backend: str, data: Path, posts: int) -> None:
    """Runs inside the subprocess: load, measure, score, measure, print one JSON line."""
    from classifiers.evaluate import read_labelled_tsv

    texts = [row["text"] for row in read_labelled_tsv(data)[:posts]]
    if backend == "routed-8-languages":  # and as many again in the seven other languages
        texts += [row["text"] for folder in sorted(UMSAB.iterdir()) if folder.name != "english"
                  for row in read_labelled_tsv(folder / "val.tsv")[:posts // 7]]
    model = load(backend)
    after_load = status_mb("VmRSS")
    for start in range(0, len(texts), CHUNK):
        model.predict(texts[start : start + CHUNK])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report = {
        "backend": backend,
        "posts": len(texts),
        "after_load_mb": after_load,
        "ru_maxrss_mb": peak,
        "vmhwm_mb": status_mb("VmHWM"),
        "torch_imported": "torch" in sys.modules,
    }
    print(json.dumps(report))


def measure(backend: str, data: Path, posts: int) -> dict[str, object]:
    """Run :func:`child` in a fresh interpreter and return its report."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", backend, "--data", str(data), "--posts", str(posts)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
    )
    if done.returncode != 0:
        raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=list(BACKENDS))
    parser.add_argument("--child", choices=list(BACKENDS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.data, args.posts)
        return 0
    backends = args.only or list(BACKENDS)
    for backend in backends:  # build the ONNX caches outside the measured processes
        if backend.startswith("onnx"):
            measure(backend, args.data, 1)
    print(f"{'backend':<11} {'posts':>6} {'after load':>10} {'ru_maxrss':>10} {'VmHWM':>10} torch")
    for backend in backends:
        r = measure(backend, args.data, args.posts)
        mib = [f"{r[key]:>6.0f} MiB" for key in ("after_load_mb", "ru_maxrss_mb", "vmhwm_mb")]
        print(f"{backend:<11} {r['posts']:>6} {' '.join(mib)} {r['torch_imported']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
