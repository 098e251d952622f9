"""Where retrained models live and which one is active (issue 18). No torch here: the daemon and
the CLI ask which folder to load without paying for it.

Layout of a models folder (``classifier.models_dir``; the daemon's proposed default is a
``models/`` folder beside the SQLite database, or beside the config on PostgreSQL)::

    models/
      active.json                 {"version": "20261120-3f9a1c2b", "rescore_after_post_id": 812,
                                   "promoted_at": "...", "parent": "<version it replaced>"}
      20261120-3f9a1c2b/          heads.safetensors, heads.json (its "version" key), adapter
      20261127-0be41d77/          ...

The committed default (``classifiers/models/default``) is never written: with no
``active.json`` — or one naming a folder that is gone — the default is what loads. A promotion
writes the version folder first and then replaces ``active.json`` in one rename, so a reader
sees the old model or the new one, never half of one. The version folder's name is the
model's version (``heads.json``'s ``version``, which :func:`classifiers.artifacts.
artifacts_version` returns), so every score names the folder whose model made it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from classifiers.artifacts import DEFAULT_HEADS_DIR, HEADS_FILE, META_FILE
from listener.core.errors import ClassifierError

ACTIVE_FILE = "active.json"
KEEP_VERSIONS = 5  # promoted versions kept on disk (the active one always among them)


@dataclass(frozen=True)
class ActiveModel:
    """What ``active.json`` says: the promoted version and where re-scoring starts."""

    version: str
    rescore_after_post_id: int  # posts with a greater id get this model's scores
    promoted_at: str
    parent: str | None  # the version it replaced


def read_active(models_dir: Path | None) -> ActiveModel | None:
    """The promoted model named in ``models_dir/active.json``, or None (the committed default
    is active). A pointer naming a folder without heads is an error, not a silent fallback:
    the scores would change model without anyone knowing why."""
    if models_dir is None:
        return None
    path = Path(models_dir) / ACTIVE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        active = ActiveModel(str(data["version"]), int(data.get("rescore_after_post_id", 0)),
                             str(data.get("promoted_at", "")), data.get("parent"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClassifierError(f"cannot read {path}: {exc}; delete it to serve the committed "
                              "default model") from exc
    if not (Path(models_dir) / active.version / HEADS_FILE).is_file():
        raise ClassifierError(f"{path} names version {active.version!r} but "
                              f"{Path(models_dir) / active.version} holds no {HEADS_FILE}; "
                              "delete active.json to serve the committed default model")
    return active


def active_heads_dir(models_dir: Path | None) -> Path:
    """The folder of the model to serve: the promoted one, else the committed default.
    ``classifiers.loader.load_classifier(heads_dir=...)`` loads it."""
    active = read_active(models_dir)
    return DEFAULT_HEADS_DIR if active is None else Path(models_dir or ".") / active.version


def rescore_floor(models_dir: Path | None) -> int:
    """The post id the classify stage starts after (``classify(..., after=...)``): what the
    promotion recorded, 0 (every post) with the committed default."""
    active = read_active(models_dir)
    return 0 if active is None else active.rescore_after_post_id


def install_version(models_dir: Path, version: str, files: dict[str, Path]) -> Path:
    """Move a written model (``files``: name → temporary path) into ``models_dir/version``.
    The folder is built beside its final place and renamed in, so it is whole or absent."""
    target = Path(models_dir) / version
    if (target / HEADS_FILE).is_file():
        raise ClassifierError(f"{target} exists already: a version is never overwritten")
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=models_dir))
    try:
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the daemon may be another user
        if target.exists():  # an empty or broken leftover of a killed run
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def activate(models_dir: Path, active: ActiveModel) -> None:
    """Point ``active.json`` at an installed version, atomically (write, fsync, rename)."""
    path = Path(models_dir) / ACTIVE_FILE
    if not (Path(models_dir) / active.version / META_FILE).is_file():
        raise ClassifierError(f"cannot activate {active.version!r}: it is not installed")
    fd, tmp = tempfile.mkstemp(prefix=".active.", dir=models_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(active), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def installed_versions(models_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(version, its retrain record)`` of each installed version, oldest promotion first."""
    found = []
    for folder in Path(models_dir).iterdir() if Path(models_dir).is_dir() else ():
        meta_path = folder / META_FILE
        if folder.name.startswith(".") or not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append((folder.name, dict(meta.get("retrain") or {})))
    return sorted(found, key=lambda item: (str(item[1].get("at", "")), item[0]))


def prune(models_dir: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Delete all but the ``keep`` newest installed versions (never the active one); the
    versions deleted. Their scores keep their version names: only the weights go."""
    active = read_active(models_dir)
    versions = [v for v, _ in installed_versions(models_dir)]
    doomed = [v for v in versions[: max(len(versions) - keep, 0)]
              if active is None or v != active.version]
    for version in doomed:
        shutil.rmtree(Path(models_dir) / version, ignore_errors=True)
    return doomed
