"""Issue 14, item 1: no record, whatever it holds, blocks a source or fails a stage.

Hypothesis writes a JSON Lines file of ordinary records with one hostile record among them: any
JSON value in every field it knows (and in unknown ones), text with lone surrogates, NUL, U+202E
and other controls, strings of up to 100,000 characters, integers far past 64 bits, floats
including NaN and infinities, nested arrays and objects. Through the real file source,
``listener.pipeline.collect`` and a SQLite file, the other records must be stored, the cursor
must move past the whole file, and the hostile record must be either stored (repaired) or
rejected with its location. A second property runs the later stages on such posts with the real
default model on ONNX Runtime (classify, rules with incident grouping, reports, dispatch to the
console sink): none may raise.
"""

from __future__ import annotations

import io
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from alerts.sinks.console import ConsoleSink
from classifiers.base import Classifier
from classifiers.loader import load_classifier
from listener.config import load_config
from listener.pipeline import Runtime
from listener.sources.base import SourceContext
from listener.sources.collect import collect
from listener.sources.file.source import FileSource, FileSourceConfig
from storage.db import load_cursor, open_db
from tests.property.strategies import PROPERTY

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RECENT = (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
FIELDS = ("id", "text", "created_at", "author", "author_followers", "url", "platform", "lang",
          "brand", "rating", "kind")
GOOD = "good-5f1c"  # no generated id is this

characters = st.one_of(
    st.characters(),  # any code point but surrogates
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates (and pairs)
    st.sampled_from(["\x00", "\u202e", "\u200d", "\x1b", "\ufeff", "\r", "\n", "\u2028"]),
)


def strings(min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    """Strings of :data:`characters`. Not ``st.text``: given a union of character strategies,
    it merges them into one alphabet that drops the surrogates again."""
    return st.lists(characters, min_size=min_size, max_size=max_size).map("".join)


texts = st.one_of(
    strings(),
    st.builds(lambda unit, times: unit * times, strings(1, 3),
              st.integers(1_000, 100_000)),  # very long strings, cheaply
)
numbers = st.one_of(
    st.integers(-(2**200), 2**200), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 1e308, -1e308, 5e-324, 10**4000]),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, texts,
    st.sampled_from([RECENT, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "review", "mention", "https://e.example/p", "http://[::1", "en", "5"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(texts, inner, max_size=3)),
    max_leaves=10,
)
# Mostly records that pass the field rules (an id, a text), so that hostile values reach Post
# and storage rather than only the field rules; sometimes anything at all.
plausible = st.one_of(scalars, json_values)
nearly_valid = st.builds(
    lambda extra, required, known: {**extra, **required, **known},
    st.dictionaries(texts, json_values, max_size=3),
    st.fixed_dictionaries({"id": st.one_of(texts, st.integers(-(2**70), 2**70)),
                           "text": strings(1).map("x".__add__) | texts}),
    st.fixed_dictionaries({}, optional={name: plausible for name in FIELDS[2:]}),
)
anything = st.builds(
    lambda extra, known: {**extra, **known},
    st.dictionaries(texts, json_values, max_size=3),
    st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS}),
)
hostile_records = st.one_of(nearly_valid, nearly_valid, anything)
pages = st.tuples(hostile_records, st.integers(0, 3), st.integers(1, 5))


def good_record(i: int) -> dict[str, Any]:
    return {"id": f"{GOOD}-{i}", "text": f"acme refund please, my order {i} never arrived",
            "author": f"user{i}", "author_followers": 10 * i, "created_at": RECENT}


def write_file(folder: Path, hostile: dict[str, Any], at: int) -> tuple[Path, int]:
    """Three good records with the hostile one at ``at``, as another tool writes JSON Lines:
    ``\\ud800`` escapes, NaN and Infinity (Python's json reads them)."""
    records = [good_record(i) for i in range(3)]
    records.insert(at, hostile)
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in records),
                    encoding="ascii")
    return path, len(records)


def check_collected(db: Database, path: Path, count: int, source: str) -> None:
    """The good records stored, the cursor past the file, the hostile one stored or rejected."""
    ids = {r["platform_id"] for r in db.query("SELECT platform_id FROM posts")}
    assert {f"{GOOD}-{i}" for i in range(3)} <= ids
    rejects = list(db.query("SELECT location, reason FROM rejects"))
    assert len(ids) + len(rejects) == count, (ids, rejects)
    for reject in rejects:
        assert reject["location"].startswith("records.jsonl:") and reject["reason"]
    state = load_cursor(db, source)["files"][str(path)]
    assert (state["offset"], state["line"]) == (path.stat().st_size, count)


@pytest.fixture(scope="module")
def model() -> Classifier:
    """The default model as serving runs it on a CPU machine; loaded once (it takes seconds)."""
    return load_classifier("default", backend="onnx")


@PROPERTY
@given(pages)
def test_a_hostile_record_never_blocks_the_rest_of_its_file(
    page: tuple[dict[str, Any], int, int],
) -> None:
    hostile, at, batch = page
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, count = write_file(folder, hostile, at)
        db = open_db(folder / "listener.db")
        try:
            config = FileSourceConfig(type="file", name="imports", path=path.name,
                                      batch_size=batch)
            source = FileSource(config, SourceContext(base_dir=folder, clock=lambda: NOW))
            collect(db, source, lambda: NOW)
            check_collected(db, path, count, "imports")
            assert collect(db, source, lambda: NOW) == 0  # nothing read twice
        finally:
            db.close()


CONFIG = """\
storage: {path: listener.db}
metrics: {port: null}
brands:
  - {name: acme, query: 'acme OR refund* OR order'}
sources:
  - {type: file, name: imports, path: records.jsonl, brand: acme}
rules:
  - {name: everything, destinations: [console]}
  - name: mixed
    when:
      any:
        - {sentiment: [negative], min_probability: 0.5}
        - {min_urgency: 0.3}
        - {keywords: [refund, "never arrived"]}
        - {min_followers: 10}
        - {max_rating: 2}
        - {languages: [en]}
        - {platforms: [file]}
        - {brands: [acme]}
        - {sources: [imports]}
    destinations: [console]
destinations:
  - {type: console, name: console, stream: stderr}
dispatch: {once_max_wait: 0}
"""


@settings(PROPERTY, max_examples=30)
@given(pages)
def test_no_stage_raises_on_posts_made_of_hostile_records(
    model: Classifier, page: tuple[dict[str, Any], int, int],
) -> None:
    hostile, at, _ = page
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, count = write_file(folder, hostile, at)
        (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
        runtime = Runtime(load_config(folder / "config.yaml", environ={}), clock=lambda: NOW,
                          sleep=lambda _: None, strict=True, preloaded=model,
                          sink_factory=lambda cfg: ConsoleSink(cfg, stream=io.StringIO()))
        try:
            runtime.migrate()
            [source] = runtime.sources()
            assert runtime.run_collect(source) is not None  # strict: any error raises
            assert runtime.run_classify() is not None
            assert runtime.run_rules() is not None
            assert runtime.run_reports() is not None
            assert runtime.run_dispatch() is not None
            db = open_db(folder / "listener.db")
            try:
                check_collected(db, path, count, "imports")
                unscored = db.execute("SELECT count(*) FROM posts p WHERE NOT EXISTS"
                                      " (SELECT 1 FROM scores s WHERE s.post_id = p.id)")
                assert unscored.fetchone()[0] == 0
            finally:
                db.close()
        finally:
            runtime.close()
