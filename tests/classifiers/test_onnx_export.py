"""The ONNX export cache: reused when valid, rebuilt when corrupt or stale, one export however
many processes start at once. Real exports (child processes with torch), real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from classifiers.artifacts import (  # noqa: E402
    DEFAULT_HEADS_DIR,
    adapter_path,
    read_meta,
    sha256_file,
)
from classifiers.base import Classifier  # noqa: E402
from classifiers.onnx_backend import load_onnx_classifier  # noqa: E402
from classifiers.onnx_export import (  # noqa: E402
    EXPORT_FORMAT,
    MODEL_FILE,
    STAMP_FILE,
    entry_path,
    stamp_problem,
)
from listener.core.errors import ClassifierError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["I love this", "worst service ever", "ok", "@AcmeHelp my package is lost again"]

# Each process waits until all are ready, so all look at the empty cache within milliseconds of
# each other, while an export takes seconds.
LOADER = """\
import json, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
here, n = Path(sys.argv[1]), int(sys.argv[2])
(here / f"ready-{sys.argv[3]}").touch()
deadline = time.monotonic() + 60
while len(list(here.glob("ready-*"))) < n and time.monotonic() < deadline:
    time.sleep(0.01)
from classifiers.onnx_backend import load_onnx_classifier
model = load_onnx_classifier(quantize=False, cache_dir=here / "cache")
print(json.dumps([p.probabilities for p in model.predict(json.loads(sys.argv[4]))]))
"""


def stamped(entry: Path) -> tuple[str, str | None]:
    """The encoder and adapter sha256 an entry was exported for."""
    stamp = json.loads((entry / STAMP_FILE).read_text())
    return stamp["encoder_sha256"], stamp.get("adapter_sha256")


def fp32_entry(cache: Path) -> Path:
    (entry,) = cache.glob("*-fp32")
    return entry


def test_second_load_reuses_the_cache(fp32: Classifier, onnx_cache: Path) -> None:
    entry = fp32_entry(onnx_cache)
    before = (entry / MODEL_FILE).stat()
    again = load_onnx_classifier(quantize=False, cache_dir=onnx_cache, batch_size=7)
    after = (entry / MODEL_FILE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert again.predict(TEXTS) == fp32.predict(TEXTS)


def test_corrupt_cache_is_detected_and_rebuilt(
    fp32: Classifier, onnx_cache: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "cache" / fp32_entry(onnx_cache).name
    shutil.copytree(fp32_entry(onnx_cache), copy)
    with open(copy / MODEL_FILE, "r+b") as handle:  # a flipped block, same size
        handle.seek(1000)
        handle.write(b"\x00garbage\x00" * 8)
    sha, adapter = stamped(copy)
    assert "corrupt" in (stamp_problem(copy, sha, False, adapter) or "")
    leftover = copy.parent / f".{copy.name}.k1ll3d"  # what a builder killed mid-export leaves
    leftover.mkdir()
    (leftover / MODEL_FILE).write_bytes(b"half a graph")
    rebuilt = load_onnx_classifier(quantize=False, cache_dir=tmp_path / "cache", batch_size=7)
    assert stamp_problem(copy, sha, False, adapter) is None
    assert rebuilt.predict(TEXTS) == fp32.predict(TEXTS)
    assert sorted(p.name for p in copy.parent.iterdir()) == [f".{copy.name}.lock", copy.name]


def test_stamp_of_another_encoder_precision_or_format_is_refused(
    fp32: Classifier, onnx_cache: Path, tmp_path: Path
) -> None:
    """The same check that sends a corrupt entry to be rebuilt (above) refuses these."""
    entry = fp32_entry(onnx_cache)
    sha, adapter = stamped(entry)
    assert stamp_problem(entry, sha, False, adapter) is None
    assert "encoder_sha256" in (stamp_problem(entry, "0" * 64, False, adapter) or "")
    assert "adapter_sha256" in (stamp_problem(entry, sha, False, "1" * 64) or "")
    assert "int8" in (stamp_problem(entry, sha, True, adapter) or "")
    assert stamp_problem(entry.parent / "nothing-here", sha, False, adapter) == "not built yet"
    old = tmp_path / entry.name
    shutil.copytree(entry, old)
    stamp = json.loads((old / STAMP_FILE).read_text())
    (old / STAMP_FILE).write_text(json.dumps({**stamp, "format": EXPORT_FORMAT - 1}))
    assert "format" in (stamp_problem(old, sha, False, adapter) or "")


def test_the_entry_is_for_the_bundled_adapter() -> None:
    """A new adapter (retraining) gets a new entry: never the graph of the previous weights."""
    meta = read_meta(DEFAULT_HEADS_DIR)
    adapter = adapter_path(DEFAULT_HEADS_DIR, meta)
    sha = meta["encoder"]["sha256"]
    ad_sha = sha256_file(adapter) if adapter else None
    entry = entry_path(Path("/c"), sha, True, ad_sha)
    assert entry.name.startswith(sha[:12]) and entry.name.endswith("-int8")
    assert (ad_sha[:12] in entry.name) if ad_sha else entry.name == f"{sha[:12]}-int8"
    assert entry_path(Path("/c"), sha, True, "f" * 64) != entry


def test_concurrent_first_loads_export_once(fp32: Classifier, tmp_path: Path) -> None:
    """Three processes start on an empty cache: one exports, the others wait for its lock and
    load the same files; nobody reads a half-written file or leaves a temporary folder."""
    n = 3
    args = [str(tmp_path), str(n)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, *args, str(i), json.dumps(TEXTS)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(n)
    ]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    logs = "".join(err for _, err in results)
    assert logs.count("checking the ONNX encoder cache") == n  # each found it missing...
    assert logs.count("exported the ONNX encoder to") == 1  # ...and one of them exported
    assert logs.count("is up to date") == n - 1
    expected = [p.probabilities for p in fp32.predict(TEXTS)]
    for out, _ in results:
        for got, want in zip(json.loads(out), expected, strict=True):
            assert got == pytest.approx(want, abs=1e-6)
    cache = tmp_path / "cache"
    entry = fp32_entry(cache)
    assert sorted(p.name for p in cache.iterdir()) == [f".{entry.name}.lock", entry.name]


def test_unwritable_cache_is_a_classifier_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ClassifierError, match="cannot write the ONNX cache"):
        load_onnx_classifier(cache_dir=not_a_folder)
