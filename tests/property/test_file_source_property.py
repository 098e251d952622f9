"""The file importer on arbitrary input: Posts or Rejected records, never a crash.

Three kinds of file: raw bytes (any encoding, any garbage, cut anywhere), JSON Lines whose
records hold arbitrary JSON in every known field, and CSV written by the csv module from
arbitrary strings. Whatever the source yields must also be storable: it goes through the real
``store_page`` into a SQLite file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

from listener.core.models import Post, Rejected
from listener.sources.base import SourceContext
from listener.sources.file.source import FileSource, FileSourceConfig
from storage.db import open_db, store_page
from tests.property.strategies import PROPERTY, hostile_text

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIELDS = ("id", "text", "created_at", "author", "author_followers", "url", "platform", "lang",
          "brand", "rating", "kind")
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(),
              hostile_text, st.sampled_from(["2026-11-20T10:00:00Z", "review", "5", "1e400"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
records = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS))


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    folder = tmp_path_factory.mktemp("file-property")
    db = open_db(folder / "listener.db")
    yield folder, db
    db.close()


def import_file(place: tuple[Path, Database], name: str, data: bytes) -> list[Post | Rejected]:
    folder, db = place
    (folder / name).write_bytes(data)
    config = FileSourceConfig(type="file", name="imports", path=name, batch_size=7)
    source = FileSource(config, SourceContext(base_dir=folder, clock=lambda: NOW))
    items: list[Post | Rejected] = []
    for page in source.fetch(None):
        store_page(db, "imports", page, NOW)  # what the source yields must be storable
        items += [*page.posts, *page.rejected]
    assert all(isinstance(item, Post | Rejected) for item in items)
    for item in items:
        if isinstance(item, Rejected):
            assert item.where.startswith(f"{name}:") and item.reason
    return items


@PROPERTY
@given(st.binary(max_size=600), st.sampled_from(["in.jsonl", "in.csv"]))
def test_any_bytes_become_posts_or_rejects(place: tuple[Path, Database], data: bytes,
                                           name: str) -> None:
    import_file(place, name, data)


@PROPERTY
@given(st.lists(records, min_size=1, max_size=8))
def test_json_lines_of_arbitrary_values_become_posts_or_rejects(
    place: tuple[Path, Database], rows: list[dict[str, Any]]
) -> None:
    lines = "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows)
    items = import_file(place, "records.jsonl", lines.encode())
    assert len(items) == len(rows)  # one answer per record, none lost


@PROPERTY
@given(st.lists(st.lists(hostile_text, min_size=3, max_size=3), max_size=8),
       st.permutations(["id", "text", "author"]))
def test_csv_of_arbitrary_strings_becomes_posts_or_rejects(
    place: tuple[Path, Database], rows: list[list[str]], header: list[str]
) -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([header, *rows])
    import_file(place, "rows.csv", buffer.getvalue().encode("utf-8", "surrogatepass"))
