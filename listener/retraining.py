"""Retraining from reviewers' corrections on the configured database (issue 18): storage's
reviewed posts in, ``classifiers.corrections.retrain`` in the middle, the decision out to the
audit log. ``listener train --from-feedback`` (``listener.commands.training``) and the daemon's
schedule both call :func:`retrain_from_feedback`; :func:`retrain_due` tells the schedule whether
a run is due (the last ``model.retrain`` entry is old enough), so a daemon restarted every day
does not retrain every day.

Where promoted models live: ``classifier.models_dir`` when the config has it (relative to the
config file), else a ``models/`` folder beside the SQLite database — beside the config file on
PostgreSQL (:func:`models_dir_for`). Each host that serves the model reads its own folder: on
a shared PostgreSQL database with workers on several hosts, point ``classifier.models_dir`` at
a shared filesystem, or retrain on one host and copy the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from classifiers.corrections import Outcome, RetrainSettings
from classifiers.corrections import retrain as run_retrain
from classifiers.model_store import active_heads_dir
from listener.core.errors import ConfigError
from storage import audit, feedback
from storage.engine import Db

log = logging.getLogger(__name__)

RETRAIN_ACTION = "model.retrain"
SYSTEM_ACTOR = "system"  # the audit log's name for what the daemon does on its own
RESCORE_HOURS = 48  # a promoted model re-scores posts collected this recently (rules' max age)
DEFAULT_DATA_DIR = Path("../shared/data")  # the committed training data, as `listener train`


def default_models_dir(database: Path | str, config_dir: Path) -> Path:
    """``models/`` beside the SQLite file, or beside the config on PostgreSQL (a URL)."""
    return (Path(database).parent if isinstance(database, Path) else Path(config_dir)) / "models"


def models_dir_for(config: Any) -> Path:
    """The config's ``classifier.models_dir`` (relative to the config file) when it has one,
    else :func:`default_models_dir`. Read with ``getattr`` so this works before the key
    exists in ``listener.config``."""
    configured = getattr(config.classifier, "models_dir", None)
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else Path(config.base_dir) / path
    return default_models_dir(config.database, config.base_dir)


def retrain_section(config: Any) -> dict[str, Any]:
    """The config's ``classifier.retrain`` section as a dict ({} while the key does not exist)."""
    section = getattr(config.classifier, "retrain", None)
    if section is None:
        return {}
    if isinstance(section, dict):
        return dict(section)
    dump = getattr(section, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(vars(section))


def data_dir_for(config: Any, given: Path | None = None) -> Path:
    """The committed training data: ``given`` (the command line), else the config's
    ``classifier.retrain.data_dir`` (relative to the config file), else ``../shared/data``
    (relative to the working directory, as ``listener train``)."""
    if given is not None:
        return Path(given)
    configured = retrain_section(config).get("data_dir")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else Path(config.base_dir) / path
    return DEFAULT_DATA_DIR


def settings_for(config: Any, **overrides: Any) -> RetrainSettings:
    """:class:`RetrainSettings` from the config's ``classifier.retrain`` section, when it has
    one (any of RetrainSettings' names), with ``overrides`` (those not None) on top."""
    known = {f.name for f in fields(RetrainSettings)}
    values = {k: v for k, v in retrain_section(config).items() if k in known and v is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown retraining setting(s) {unknown}")
    return replace(RetrainSettings(), **values)


def retrain_from_feedback(
    db: Db,
    models_dir: Path,
    data_dir: Path,
    now: datetime,
    *,
    actor: str = SYSTEM_ACTOR,
    settings: RetrainSettings | None = None,
    held_out_percent: int = feedback.HELD_OUT_PERCENT,
    rescore_hours: float = RESCORE_HOURS,
    dry_run: bool = False,
    log_line: Callable[[str], None] | None = None,
    encoder: Any = None,
) -> Outcome:
    """Retrain the active model's heads on the reviewed posts in ``db`` and promote the
    candidate into ``models_dir`` when it is better (``classifiers.corrections``); the decision
    — promoted, kept or skipped, with its figures — is recorded in the audit log as
    ``model.retrain`` by ``actor`` (a dry run records nothing and writes no model).

    On promotion the new model re-scores only posts collected in the last ``rescore_hours``
    and posts nothing scored yet (``storage.feedback.rescore_floor``): the floor goes into the
    models folder's ``active.json`` for the classify stage."""
    rows = feedback.reviewed_posts(db, held_out_percent=held_out_percent)
    since = now - timedelta(hours=rescore_hours)
    outcome = run_retrain(
        rows, active_heads_dir(models_dir), models_dir, data_dir=data_dir, now=now,
        settings=settings or RetrainSettings(), dry_run=dry_run,
        rescore_after_post_id=lambda: feedback.rescore_floor(db, since),
        log=log_line or log.info, encoder=encoder)
    if not dry_run:
        detail = {**outcome.detail(), "held_out_percent": held_out_percent,
                  "rescore_hours": rescore_hours}
        audit.record(db, actor, RETRAIN_ACTION, now,
                     target=outcome.version or outcome.current_version, detail=detail)
    return outcome


def last_retrain(db: Db) -> audit.Entry | None:
    """The newest ``model.retrain`` audit entry (promoted, kept or skipped), or None."""
    found = audit.entries(db, audit.AuditFilter(action=RETRAIN_ACTION), limit=1)
    return found[0] if found else None


def retrain_due(db: Db, now: datetime, every: timedelta) -> bool:
    """Whether the schedule should retrain now: no run recorded yet, or the last one is at
    least ``every`` old (or dated in the future: a clock set back must not stop it)."""
    last = last_retrain(db)
    if last is None:
        return True
    at = datetime.fromisoformat(last.at.replace("Z", "+00:00"))
    return now - at >= every or at > now + timedelta(hours=1)
