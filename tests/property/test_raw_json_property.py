"""``storage.db.raw_json`` (orjson, the standard encoder where orjson refuses) reads back as
the standard encoder's text does, for every raw record a source can hand over: what a post's
``raw`` holds after ``Post`` construction has cleaned it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from listener.core.models import clean_raw
from storage.db import raw_json
from tests.property.strategies import PROPERTY

STANDARD = json.JSONEncoder(ensure_ascii=False, default=str).encode
SCALARS = (st.none() | st.booleans() | st.text() | st.floats()
           | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits too
           | st.datetimes(timezones=st.just(UTC)) | st.datetimes())
KEYS = st.text() | st.integers(min_value=-5, max_value=5) | st.booleans() | st.none()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=20)


@PROPERTY
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_raw_json_reads_back_as_the_standard_encoders_text(raw: dict[Any, Any]) -> None:
    clean = clean_raw(raw)  # what storage is handed: Post construction cleans raw first
    assert json.loads(raw_json(clean)) == json.loads(STANDARD(clean))


def test_what_orjson_refuses_is_encoded_by_the_standard_encoder() -> None:
    raw = {"big": 2**70, "when": datetime(2026, 12, 6, tzinfo=UTC), "tuple": (1, "é")}
    assert raw_json(raw) == STANDARD(raw)
    assert json.loads(raw_json({"when": raw["when"], 1: "one"})) == {
        "when": "2026-12-06 00:00:00+00:00", "1": "one"}
