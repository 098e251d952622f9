"""The file source on real files: formats, bad records, and incremental reading via the cursor."""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from listener.core.errors import ConfigError
from listener.core.models import Page, Post, Rejected
from listener.sources import source_class
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.file.source import MAX_QUOTED_LINES, FileSource, FileSourceConfig

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

FULL_RECORDS: list[dict[str, Any]] = [
    {
        "id": "r1",
        "text": "  Love the new app!  ",
        "created_at": "2024-04-30T08:15:00Z",
        "author": "alice",
        "author_followers": 1200,
        "url": "https://example.com/p/r1",
        "platform": "trustpilot",
        "lang": "en",
        "brand": "acme",
        "rating": 4.5,
        "kind": "review",
        "stars_label": "great",
    },
    {
        "id": 42,
        "text": "Checkout is broken again",
        "created_at": "2024-04-30T10:00:00+02:00",
        "author": "bob",
        "author_followers": 0,
        "url": "http://example.org/42",
        "platform": "forum",
        "lang": "de",
        "brand": "acme-eu",
        "rating": 1,
        "kind": "mention",
    },
]

COLUMNS = [
    "id",
    "text",
    "created_at",
    "author",
    "author_followers",
    "url",
    "platform",
    "lang",
    "brand",
    "rating",
    "kind",
    "stars_label",
]


@dataclass
class Result:
    pages: list[Page]
    posts: list[Post]
    rejected: list[Rejected]
    cursor: Any


def make_source(tmp_path: Path, path: str = "posts.jsonl", **options: Any) -> FileSource:
    config = FileSourceConfig(type="file", name="exports", path=path, **options)
    return FileSource(config, SourceContext(base_dir=tmp_path, clock=lambda: NOW))


def fetch(source: FileSource, cursor: Any = None) -> Result:
    """Drain one fetch; the cursor is the last page's (or the given one if no page came)."""
    pages = list(source.fetch(cursor))
    return Result(
        pages=pages,
        posts=[post for page in pages for post in page.posts],
        rejected=[reject for page in pages for reject in page.rejected],
        cursor=pages[-1].cursor if pages else cursor,
    )


def jsonl(*records: Any) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def csv_text(rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "ab") as handle:
        handle.write(data)


def ids(result: Result) -> list[str]:
    return [post.platform_id for post in result.posts]


# --- formats and field mapping ---------------------------------------------------------------


def assert_full_posts(posts: list[Post]) -> None:
    first, second = posts
    assert first == Post(
        platform="trustpilot",
        platform_id="r1",
        text="Love the new app!",
        created_at=datetime(2024, 4, 30, 8, 15, tzinfo=UTC),
        source="exports",
        url="https://example.com/p/r1",
        author="alice",
        author_followers=1200,
        lang="en",
        kind="review",
        rating=4.5,
        brand="acme",
        raw=first.raw,
    )
    assert first.raw["stars_label"] == "great"  # unknown columns are kept in raw only
    assert (second.platform_id, second.kind, second.rating) == ("42", "mention", 1.0)
    assert second.created_at == datetime(2024, 4, 30, 8, 0, tzinfo=UTC)
    assert (second.author_followers, second.url, second.brand) == (
        0,
        "http://example.org/42",
        "acme-eu",
    )


def test_jsonl_maps_every_field(tmp_path: Path) -> None:
    (tmp_path / "posts.jsonl").write_text(jsonl(*FULL_RECORDS))
    result = fetch(make_source(tmp_path))
    assert result.rejected == []
    assert_full_posts(result.posts)
    assert result.posts[1].raw == FULL_RECORDS[1]


def test_csv_maps_the_same_columns(tmp_path: Path) -> None:
    (tmp_path / "posts.csv").write_text(csv_text(FULL_RECORDS))
    result = fetch(make_source(tmp_path, "posts.csv"))
    assert result.rejected == []
    assert_full_posts(result.posts)
    assert result.posts[1].raw["id"] == "42"  # raw is the row as read: all text


def test_defaults_come_from_config_and_clock(tmp_path: Path) -> None:
    (tmp_path / "posts.jsonl").write_text(
        jsonl({"id": 1, "text": "plain"}, {"id": 2, "text": "rated", "rating": "3"})
    )
    source = make_source(tmp_path, platform="appstore", brand="acme")
    plain, rated = fetch(source).posts
    assert (plain.platform, plain.brand, plain.kind, plain.source) == (
        "appstore",
        "acme",
        "mention",
        "exports",
    )
    assert plain.created_at == NOW  # the injected clock, not the wall clock
    assert (plain.author, plain.url, plain.author_followers, plain.rating) == (None,) * 4
    assert (rated.kind, rated.rating) == ("review", 3.0)  # a rating makes it a review


def test_config_kind_review(tmp_path: Path) -> None:
    (tmp_path / "posts.jsonl").write_text(jsonl({"id": 1, "text": "x"}))
    assert fetch(make_source(tmp_path, kind="review")).posts[0].kind == "review"


def test_clock_is_called_for_each_record_without_a_date(tmp_path: Path) -> None:
    ticks = iter(NOW + timedelta(seconds=n) for n in range(10))
    (tmp_path / "posts.jsonl").write_text(jsonl({"id": 1, "text": "a"}, {"id": 2, "text": "b"}))
    config = FileSourceConfig(type="file", name="exports", path="posts.jsonl")
    source = FileSource(config, SourceContext(base_dir=tmp_path, clock=lambda: next(ticks)))
    dates = [post.created_at for post in fetch(source).posts]
    assert dates == [NOW, NOW + timedelta(seconds=1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-30T08:15:00Z", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),
        ("2024-04-30T08:15:00+00:00", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),
        ("2024-04-30T10:15:00+02:00", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),
        ("2024-04-30T03:45:00-04:30", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),
        ("2024-04-30T08:15:00.250Z", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30 08:15:00", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),  # naive = UTC
        ("2024-04-30", datetime(2024, 4, 30, tzinfo=UTC)),
    ],
)
def test_created_at_is_parsed_to_utc(tmp_path: Path, text: str, expected: datetime) -> None:
    (tmp_path / "posts.jsonl").write_text(jsonl({"id": 1, "text": "x", "created_at": text}))
    (post,) = fetch(make_source(tmp_path)).posts
    assert post.created_at == expected
    assert post.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("name", ["a.jsonl", "a.ndjson", "a.json", "a.JSONL", "a.csv"])
def test_auto_format_by_extension(tmp_path: Path, name: str) -> None:
    records = [{"id": "1", "text": "hello"}]
    body = csv_text(records, ["id", "text"]) if name.endswith(".csv") else jsonl(*records)
    (tmp_path / name).write_text(body)
    assert ids(fetch(make_source(tmp_path, name))) == ["1"]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    (tmp_path / "dump.txt").write_text(csv_text([{"id": "1", "text": "hi"}], ["id", "text"]))
    assert ids(fetch(make_source(tmp_path, "dump.txt", format="csv"))) == ["1"]


def test_unknown_extension_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(jsonl({"id": 1, "text": "x"}))
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        list(make_source(tmp_path, "*").fetch(None))  # raised before any page is yielded


def test_registry_and_config_validation() -> None:
    assert source_class("file") is FileSource
    assert FileSource.type == "file" and FileSource.Config is FileSourceConfig
    defaults = FileSourceConfig(type="file", name="x", path="p.jsonl")
    assert (defaults.format, defaults.platform, defaults.kind, defaults.batch_size) == (
        "auto",
        "file",
        "mention",
        500,
    )
    for bad in ({"batch_size": 0}, {"format": "xml"}, {"kind": "tweet"}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            FileSourceConfig(type="file", name="x", path="p.jsonl", **bad)
    own = set(FileSourceConfig.model_fields) - set(SourceConfig.model_fields)
    assert own == {"path", "format", "platform", "kind", "batch_size"}
    assert all(FileSourceConfig.model_fields[key].description for key in own)


# --- bad records -----------------------------------------------------------------------------


def test_bad_jsonl_records_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 1, "text": "good one"}),  # 1
        '{"id": 2, "text": "unclosed"',  # 2
        json.dumps([{"id": 3, "text": "in an array"}]),  # 3
        json.dumps({"text": "no id"}),  # 4
        json.dumps({"id": 5}),  # 5
        json.dumps({"id": 6, "text": "   "}),  # 6
        json.dumps({"id": 7, "text": "x", "created_at": "yesterday"}),  # 7
        json.dumps({"id": 8, "text": "x", "author_followers": "many"}),  # 8
        json.dumps({"id": 9, "text": "x", "author_followers": -3}),  # 9
        json.dumps({"id": 10, "text": "x", "rating": 7}),  # 10
        json.dumps({"id": 11, "text": "x", "url": "javascript:alert(1)"}),  # 11
        json.dumps({"id": 12, "text": "x", "kind": "tweet"}),  # 12
        json.dumps({"id": 13.5, "text": "x"}),  # 13
        json.dumps({"id": 14, "text": "good two", "author_followers": None, "rating": ""}),  # 14
    ]
    data = "\n".join(lines).encode() + b"\n" + b'{"id": 15, "text": "caf\xe9"}\n'
    data += json.dumps({"id": 16, "text": "good three"}).encode() + b"\n"
    (tmp_path / "posts.jsonl").write_bytes(data)
    result = fetch(make_source(tmp_path))
    assert ids(result) == ["1", "14", "16"]
    assert result.posts[1].author_followers is None and result.posts[1].rating is None
    reasons = {reject.where: reject.reason for reject in result.rejected}
    assert list(reasons) == [f"posts.jsonl:{n}" for n in range(2, 14)] + ["posts.jsonl:15"]
    expected = {
        2: "invalid JSON",
        3: "expected a JSON object",
        4: "missing required field 'id'",
        5: "missing required field 'text'",
        6: "'text' is empty",
        7: "bad date in 'created_at'",
        8: "bad number in 'author_followers'",
        9: "bad number in 'author_followers'",
        10: "bad number in 'rating'",
        11: "'url' must be an http(s) URL",
        12: "'kind' must be one of",
        13: "'id' must be a string or an integer",
        15: "not valid UTF-8",
    }
    for line, reason in expected.items():
        assert reason in reasons[f"posts.jsonl:{line}"]


def test_bad_csv_rows_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    data = (
        b"id,text,created_at,rating\n"
        b"1,good one,2024-04-30T08:00:00Z,\n"  # 2
        b"2,too,many,columns,here\n"  # 3
        b"3,too few\n"  # 4
        b"4,bad date,30/04/2024,\n"  # 5
        b"5,bad rating,,five\n"  # 6
        b"6,caf\xe9,,\n"  # 7
        b",no id,,\n"  # 8
        b"9,,,\n"  # 9
        b"10,good two,,5\n"  # 10
    )
    (tmp_path / "posts.csv").write_bytes(data)
    result = fetch(make_source(tmp_path, "posts.csv"))
    assert ids(result) == ["1", "10"]
    assert [(r.where, r.reason.split(":")[0]) for r in result.rejected] == [
        ("posts.csv:3", "wrong column count"),
        ("posts.csv:4", "wrong column count"),
        ("posts.csv:5", "bad date in 'created_at'"),
        ("posts.csv:6", "bad number in 'rating'"),
        ("posts.csv:7", "not valid UTF-8 (byte 0xe9 at position 5)"),
        ("posts.csv:8", "missing required field 'id'"),
        ("posts.csv:9", "required field 'text' is empty"),
    ]
    assert "expected 4 as in the header, got 5" in result.rejected[0].reason


def test_a_file_of_only_rejects_still_yields_a_page_that_moves_the_cursor(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text("not json\n[]\n")
    source = make_source(tmp_path)
    first = fetch(source)
    assert len(first.pages) == 1 and first.posts == [] and len(first.rejected) == 2
    assert fetch(source, first.cursor).pages == []  # the rejects are not reported twice


def test_csv_header_without_required_columns_is_reported_and_not_consumed(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("id,body\n1,hello\n")
    source = make_source(tmp_path, "posts.csv")
    result = fetch(source)
    assert result.posts == []
    assert [(r.where, r.reason) for r in result.rejected] == [
        ("posts.csv:1", "CSV header lacks required column(s): text")
    ]
    path.write_text("id,text\n1,hello\n")  # fixed in place: the file is read from the top
    assert ids(fetch(source, result.cursor)) == ["1"]


def test_blank_lines_and_empty_csv_rows_are_skipped_silently(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '\n{"id": 1, "text": "a"}\n   \n\r\n{"id": 2, "text": "b"}\n\n'
    )
    (tmp_path / "b.csv").write_text("\nid,text\n\n1,a\r\n,\n  \n2,b\n\n")
    result = fetch(make_source(tmp_path, "*.*"))
    assert result.rejected == []
    assert ids(result) == ["1", "2", "1", "2"]
    assert result.cursor["files"][str(tmp_path / "a.jsonl")]["line"] == 6


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    (tmp_path / "a.jsonl").write_bytes(bom + b'{"id": 1, "text": "caf\xc3\xa9"}\n')
    (tmp_path / "b.csv").write_bytes(bom + b"id,text\r\n2,caf\xc3\xa9\r\n")
    result = fetch(make_source(tmp_path, "*.*"))
    assert result.rejected == []
    assert [(p.platform_id, p.text) for p in result.posts] == [("1", "café"), ("2", "café")]
    assert result.posts[1].raw == {"id": "2", "text": "café"}


def test_csv_quoted_fields_may_span_lines(tmp_path: Path) -> None:
    rows = [{"id": "1", "text": 'line one\nline "two"\n\nend'}, {"id": "2", "text": "next"}]
    (tmp_path / "posts.csv").write_text(csv_text(rows, ["id", "text"]) + '3,"6"" screen\n')
    result = fetch(make_source(tmp_path, "posts.csv"))
    assert [p.text for p in result.posts] == ['line one\nline "two"\n\nend', "next"]
    assert result.rejected == []
    assert result.cursor["files"][str(tmp_path / "posts.csv")]["line"] == 6  # 3 is not done
    append(tmp_path / "posts.csv", 'TV"\n4,after\n')
    again = fetch(make_source(tmp_path, "posts.csv"), result.cursor)
    assert [p.text for p in again.posts] == ['6" screen\nTV', "after"]


def test_csv_stray_quote_is_rejected_after_the_line_cap(tmp_path: Path) -> None:
    body = 'id,text\n1,"stray quote\n' + "".join(f"{n},row {n}\n" for n in range(2, 1100))
    (tmp_path / "posts.csv").write_text(body)
    result = fetch(make_source(tmp_path, "posts.csv", batch_size=5000))
    assert [(r.where, r.reason) for r in result.rejected] == [
        ("posts.csv:2", f"unterminated quoted field (not closed within {MAX_QUOTED_LINES} lines)")
    ]
    assert ids(result) == [str(n) for n in range(2, 1100)]


# --- incremental reading -----------------------------------------------------------------------


def test_resume_with_returned_cursor_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(jsonl(*FULL_RECORDS) + "broken\n")
    (tmp_path / "b.csv").write_text(csv_text(FULL_RECORDS))
    source = make_source(tmp_path, "*.*")
    first = fetch(source)
    assert len(first.posts) == 4 and len(first.rejected) == 1
    assert list(source.fetch(first.cursor)) == []


def test_appended_lines_are_picked_up_and_old_ones_not_reread(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl({"id": 1, "text": "a"}, {"id": 2, "text": "b"}))
    source = make_source(tmp_path)
    first = fetch(source)
    append(path, jsonl({"id": 3, "text": "c"}, "oops", {"id": 4, "text": "d"}))
    second = fetch(source, first.cursor)
    assert ids(second) == ["3", "4"]
    assert [r.where for r in second.rejected] == ["posts.jsonl:4"]  # line numbers carry on
    assert fetch(source, second.cursor).pages == []


def test_appended_csv_rows_use_the_saved_header(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("text,id,author\nfirst,1,ann\n")
    source = make_source(tmp_path, "posts.csv")
    first = fetch(source)
    append(path, "second,2,bo\n")
    (post,) = fetch(source, first.cursor).posts
    assert (post.platform_id, post.text, post.author) == ("2", "second", "bo")


def test_partial_final_json_line_waits_until_completed(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl({"id": 1, "text": "a"}) + '{"id": 2, "te')
    source = make_source(tmp_path)
    first = fetch(source)
    assert ids(first) == ["1"] and first.rejected == []
    assert list(source.fetch(first.cursor)) == []  # still incomplete: nothing, no reject
    append(path, 'xt": "b"}\n{"id": 3, "text": "c"}')  # the last line is complete JSON already
    second = fetch(source, first.cursor)
    assert ids(second) == ["2", "3"] and second.rejected == []
    append(path, "\n")  # the newline of the record already taken is just a blank line
    third = fetch(source, second.cursor)
    assert third.posts == [] and third.rejected == []


def test_partial_final_csv_row_waits_for_all_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("id,text,author\n1,a,ann\n2,b")
    source = make_source(tmp_path, "posts.csv")
    first = fetch(source)
    assert ids(first) == ["1"] and first.rejected == []
    append(path, ",bo")  # now a full row, even without its newline
    second = fetch(source, first.cursor)
    assert ids(second) == ["2"] and second.rejected == []


def test_a_header_without_newline_is_not_trusted_yet(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("id,te")
    source = make_source(tmp_path, "posts.csv")
    first = fetch(source)
    assert first.posts == [] and first.rejected == []
    append(path, "xt\n1,hello\n")
    assert ids(fetch(source, first.cursor)) == ["1"]


def test_replaced_file_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl({"id": 1, "text": "a"}, {"id": 2, "text": "b"}))
    source = make_source(tmp_path)
    first = fetch(source)
    fresh = tmp_path / "posts.jsonl.tmp"
    fresh.write_text(jsonl({"id": 1, "text": "a"}, {"id": 2, "text": "b"}, {"id": 3, "text": "c"}))
    os.replace(fresh, path)  # new inode, as an exporter writing atomically would do
    assert ids(fetch(source, first.cursor)) == ["1", "2", "3"]


def test_truncated_file_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl({"id": 1, "text": "a long first record"}, {"id": 2, "text": "b"}))
    source = make_source(tmp_path)
    first = fetch(source)
    with open(path, "r+b") as handle:  # same inode, now shorter than the saved offset
        handle.truncate(0)
        handle.write(jsonl({"id": 9, "text": "z"}).encode())
    assert ids(fetch(source, first.cursor)) == ["9"]


def test_file_rewritten_in_place_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl({"id": 1, "text": "a"}))
    source = make_source(tmp_path)
    first = fetch(source)
    inode = path.stat().st_ino
    path.write_text(jsonl({"id": 7, "text": "newer"}, {"id": 1, "text": "a"}))  # `export > f`
    assert path.stat().st_ino == inode
    assert ids(fetch(source, first.cursor)) == ["7", "1"]


def test_glob_reads_files_in_sorted_order_and_recurses(tmp_path: Path) -> None:
    for relative, ident in [("b.jsonl", "b"), ("a.jsonl", "a"), ("sub/deep/c.jsonl", "c")]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(jsonl({"id": ident, "text": ident}, "bad"))
    (tmp_path / "sub" / "ignored.txt").write_text("not matched\n")
    flat = fetch(make_source(tmp_path, "*.jsonl"))
    assert ids(flat) == ["a", "b"]
    deep = fetch(make_source(tmp_path, "**/*.jsonl"))
    assert ids(deep) == ["a", "b", "c"]
    assert [r.where for r in deep.rejected] == [
        "a.jsonl:2",
        "b.jsonl:2",
        os.path.join("sub", "deep", "c.jsonl") + ":2",
    ]
    assert list(deep.cursor["files"]) == [
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
        str(tmp_path / "sub" / "deep" / "c.jsonl"),
    ]


def test_absolute_path_outside_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("nope\n")
    config = FileSourceConfig(type="file", name="abs", path=str(tmp_path / "data" / "*.jsonl"))
    ctx = SourceContext(base_dir=tmp_path / "elsewhere", clock=lambda: NOW)
    (reject,) = fetch(FileSource(config, ctx)).rejected
    assert reject.where == str(tmp_path / "data" / "x.jsonl") + ":1"


def test_glob_matching_nothing_yields_no_pages_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="listener.sources.file"):
        assert list(make_source(tmp_path, "exports/**/*.csv").fetch(None)) == []
        assert list(make_source(tmp_path, "missing.jsonl").fetch(None)) == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "matched no files" in caplog.records[0].getMessage()


def test_batch_size_splits_pages_with_advancing_unshared_cursors(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(jsonl(*({"id": n, "text": f"post {n}"} for n in range(7))) + "bad\n")
    (tmp_path / "z.csv").write_text("id,text\n100,x\n")
    source = make_source(tmp_path, "*.*", batch_size=3)
    pages = []
    snapshots = []
    for page in source.fetch(None):
        pages.append(page)
        snapshots.append(copy.deepcopy(page.cursor))
    assert [len(page.posts) + len(page.rejected) for page in pages] == [3, 3, 2, 1]
    assert [page.cursor for page in pages] == snapshots  # later pages did not mutate earlier ones
    key = str(path)
    offsets = [page.cursor["files"][key]["offset"] for page in pages[:3]]
    lines = [page.cursor["files"][key]["line"] for page in pages[:3]]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    assert offsets[-1] == path.stat().st_size and lines == [3, 6, 8]
    assert list(pages[2].cursor["files"]) == [key]  # the CSV file comes later
    assert set(pages[3].cursor["files"]) == {key, str(tmp_path / "z.csv")}
    # resuming from a middle page continues right after it
    rest = fetch(source, pages[0].cursor)
    assert ids(rest) == ["3", "4", "5", "6", "100"]


def test_cursor_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("id,text\n1,a\n")
    source = make_source(tmp_path, "posts.csv")
    first = fetch(source)
    saved = json.loads(json.dumps(first.cursor))
    assert saved == first.cursor
    entry = saved["files"][str(path)]
    assert entry["header"] == ["id", "text"] and entry["offset"] == path.stat().st_size
    assert (entry["ino"], entry["dev"], entry["line"]) == (
        path.stat().st_ino,
        path.stat().st_dev,
        2,
    )
    append(path, "2,b\n")
    assert ids(fetch(source, saved)) == ["2"]


@pytest.mark.parametrize("cursor", [{}, {"version": 99}, "garbage", {"version": 1, "files": []}])
def test_unreadable_cursor_starts_over(tmp_path: Path, cursor: Any) -> None:
    (tmp_path / "posts.jsonl").write_text(jsonl({"id": 1, "text": "a"}))
    assert ids(fetch(make_source(tmp_path), cursor)) == ["1"]


def test_bad_cursor_entry_restarts_only_that_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(jsonl({"id": 1, "text": "a"}))
    (tmp_path / "b.jsonl").write_text(jsonl({"id": 2, "text": "b"}))
    source = make_source(tmp_path, "*.jsonl")
    cursor = fetch(source).cursor
    cursor["files"][str(tmp_path / "a.jsonl")]["offset"] = "ten"
    assert ids(fetch(source, cursor)) == ["1"]
