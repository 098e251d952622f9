"""Reviewed posts leave the dashboard in the shared TSV format and `listener train --extra`
trains on them (a tiny run: synthetic base data, one epoch, like the train smoke test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from classifiers.evaluate import read_labelled_tsv
from classifiers.train import read_extra
from listener.commands.training import train
from listener.core.errors import ClassifierError
from listener.core.models import Page, Post, Score
from storage import db as store
from storage import feedback
from tests.classifiers.test_train_smoke import tiny_data  # noqa: F401 (fixture)
from tests.web.seed import NOW, Seeded

pytestmark = pytest.mark.slow  # make test-fast leaves it out


def _download(client: FlaskClient, field: str, folder: Path) -> Path:
    response = client.get(f"/export/training-{field}.tsv")
    assert response.status_code == 200 and response.mimetype == "text/tab-separated-values"
    path = folder / f"training-{field}.tsv"
    path.write_bytes(response.get_data())
    return path


def test_exports_are_shared_format_tsv_with_folded_text(
    client: FlaskClient, seeded: tuple[Path, Seeded], tmp_path: Path
) -> None:
    db = store.open_db(seeded[0])
    messy = Post(platform="x", platform_id="tabs", text="line one\tstill\n\nline two",
                 created_at=NOW, source="x-main", brand="acme")
    store.store_page(db, "x-main", Page(posts=[messy]), NOW)
    post_id = db.execute("SELECT id FROM posts WHERE platform_id = 'tabs'").fetchone()[0]
    store.save_scores(db, [(post_id, Score("negative", .9, .05, .05, .9, "m", "1"), None)], NOW)
    feedback.add_feedback(db, post_id, "sentiment", "neutral", "test", NOW)
    db.close()
    sentiment = _download(client, "sentiment", tmp_path)
    lines = sentiment.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id\tlabel\ttext" and all(line.count("\t") == 2 for line in lines)
    assert lines[-1] == "x:tabs\tneutral\tline one still line two"
    rows = read_labelled_tsv(_download(client, "urgency", tmp_path))
    assert len(rows) == 40 and set(rows[0]) == {"id", "label", "domain", "text"}
    assert {r["label"] for r in rows} == {"complaint", "not_complaint"}
    assert client.get("/export/training-relevance.tsv").status_code == 404


def test_listener_train_extra_adds_the_reviewed_rows(
    client: FlaskClient, tiny_data: Path, tmp_path: Path  # noqa: F811 (fixture)
) -> None:
    sentiment = _download(client, "sentiment", tmp_path)
    urgency = _download(client, "urgency", tmp_path)
    out = tmp_path / "heads"
    args = ["--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--cv-folds", "2",
            "--device", "cpu", "--extra", str(sentiment), "--extra", str(urgency)]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    assert "added 40 sentiment rows" in result.output and "added 40 urgency rows" in result.output
    rows = json.loads((out / "heads.json").read_text())["training"]["rows"]
    assert rows == {"sentiment/train.tsv": 60, "sentiment/val.tsv": 15,
                    "complaints/train.tsv": 30, "extra sentiment: training-sentiment.tsv": 40,
                    "extra urgency: training-urgency.tsv": 40}


def test_an_extra_file_with_foreign_labels_is_refused(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("id\tlabel\ttext\n1\tnegative\tbad\n2\tcomplaint\tfix it\n", encoding="utf-8")
    with pytest.raises(ClassifierError, match="unknown labels"):
        read_extra(mixed)
    fine = tmp_path / "fine.tsv"
    fine.write_text("id\tlabel\ttext\n1\tnegative\tbad\n", encoding="utf-8")
    assert read_extra(fine)[0] == "sentiment"
