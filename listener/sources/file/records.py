"""Record-level rules of the file source: where a record ends, and its bytes to a Post or a reason.

Kept free of file positions and cursors so that the JSON Lines and CSV readers share exactly the same field
rules, and so every rule can be tested on a plain dict. Every problem is a :class:`RecordError`
whose message is the human-readable reason stored in ``Rejected.reason``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from listener.core.models import POST_KINDS, Clock, Post, parse_iso

REQUIRED_COLUMNS = ("id", "text")
BOM = b"\xef\xbb\xbf"


class RecordError(ValueError):
    """One input record cannot become a Post; ``str(error)`` says why, for ``Rejected.reason``."""


@dataclass(frozen=True)
class RecordDefaults:
    """Values a record may leave out, taken from the source's config."""

    source: str
    platform: str
    kind: str
    brand: str | None


def decode_utf8(data: bytes) -> str:
    """Strict UTF-8, because silently replaced characters would corrupt stored text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start})"
        ) from None


def parse_json_line(data: bytes) -> dict[str, Any]:
    """One JSON Lines record; anything but a JSON object is an error, so a stray array or
    number is reported instead of half-imported."""
    text = decode_utf8(data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise RecordError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise RecordError("invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise RecordError(
            f"expected a JSON object per line, got {_json_type(value)}"
            " (a .json file must be JSON Lines: one object per line)"
        )
    return value


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_csv_row(text: str) -> list[str]:
    """The fields of one CSV record (which may span lines inside quoted fields)."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise RecordError(f"malformed CSV: {exc}") from None
    if len(rows) != 1:
        raise RecordError(f"malformed CSV: expected one row, found {len(rows)}")
    return rows[0]


def check_header(row: list[str]) -> list[str]:
    """Column names of a CSV header; without ``id`` and ``text`` no row could ever import, so
    the header itself is rejected rather than every row after it."""
    names = [name.strip() for name in row]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise RecordError(f"CSV header lacks required column(s): {', '.join(missing)}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RecordError(f"CSV header repeats column(s): {', '.join(map(repr, duplicates))}")
    return names


def ends_inside_quotes(line: str, in_quotes: bool) -> bool:
    """Whether a CSV record is still inside a quoted field after ``line``.

    Follows the csv module's (non-strict) reading: a quote opens a quoted field only at the start
    of a field or right after a closing quote (an escaped ``""``); elsewhere it is a literal
    character. Only quote positions are visited, so quote-free lines cost one ``find``.
    """
    pos = line.find('"')
    closed_at = -2
    while pos != -1:
        if in_quotes:
            in_quotes, closed_at = False, pos
        elif pos == 0 or line[pos - 1] == "," or pos == closed_at + 1:
            in_quotes = True
        pos = line.find('"', pos + 1)
    return in_quotes


@dataclass
class RawRecord:
    """The lines of one CSV record as read (several when a quoted field holds newlines)."""

    lines: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    error: str | None = None  # the first UTF-8 problem, reported once the record is complete
    closed: bool = True  # False: the last line ended inside a quoted field

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def complete(self) -> bool:
        """Closed and newline-terminated: nothing a writer could still add to it."""
        return self.closed and self.lines[-1].endswith(b"\n")


def read_csv_record(
    readline: Callable[[], bytes], max_lines: int, *, skip_bom: bool
) -> RawRecord | None:
    """Physical lines up to the end of one CSV record, the end of the data, or ``max_lines``.

    Undecodable bytes do not stop the framing (the quotes are still found in the replaced text),
    so one bad byte costs one record, not the rest of the file. None at the end of the data.
    """
    raw = RawRecord()
    in_quotes = False
    while len(raw.lines) < max_lines and (line := readline()):
        content = line[len(BOM) :] if skip_bom and not raw.lines and line.startswith(BOM) else line
        try:
            text = decode_utf8(content)
        except RecordError as exc:
            raw.error = raw.error or str(exc)
            text = content.decode("utf-8", "replace")
        raw.lines.append(line)
        raw.texts.append(text)
        in_quotes = ends_inside_quotes(text, in_quotes)
        if not in_quotes or not line.endswith(b"\n"):
            break
    raw.closed = not in_quotes
    return raw if raw.lines else None


def record_to_post(record: dict[str, Any], defaults: RecordDefaults, clock: Clock) -> Post:
    """Validate and normalise one record; raises RecordError naming the first bad field."""
    rating = _rating(record)
    return Post(
        platform=_optional_str(record, "platform") or defaults.platform,
        platform_id=_required_id(record),
        text=_required_text(record),
        created_at=_created_at(record, clock),
        source=defaults.source,
        url=_url(record),
        author=_optional_str(record, "author"),
        author_followers=_followers(record),
        lang=_optional_str(record, "lang"),
        kind=_kind(record, defaults.kind, rating),
        rating=rating,
        brand=_optional_str(record, "brand") or defaults.brand,
        raw=record,
    )


def _present(record: dict[str, Any], key: str) -> Any:
    """The value of ``key``, or None when absent, null or blank (CSV cannot say null)."""
    value = record.get(key)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _required_id(record: dict[str, Any]) -> str:
    value = _present(record, "id")
    if value is None:
        raise RecordError("missing required field 'id'")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"'id' must be a string or an integer, got {value!r}")
    return str(value).strip()


def _required_text(record: dict[str, Any]) -> str:
    value = record.get("text")
    if value is None:
        raise RecordError("missing required field 'text'")
    if not isinstance(value, str):
        raise RecordError(f"'text' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError("required field 'text' is empty")
    return value.strip()


def _optional_str(record: dict[str, Any], key: str) -> str | None:
    """Strings as given; numbers as their text (a numeric author id is still a name)."""
    value = _present(record, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"'{key}' must be a string, got {type(value).__name__}")
    return str(value).strip()


def _created_at(record: dict[str, Any], clock: Clock) -> datetime:
    value = _present(record, "created_at")
    if value is None:
        return clock()
    if not isinstance(value, str):
        raise RecordError(f"bad date in 'created_at': {value!r} is not an ISO 8601 string")
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise RecordError(f"bad date in 'created_at': {value!r} is not ISO 8601") from None


def _url(record: dict[str, Any]) -> str | None:
    value = _optional_str(record, "url")
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RecordError(f"'url' must be an http(s) URL, got {value!r}")
    return value


def _followers(record: dict[str, Any]) -> int | None:
    value = _present(record, "author_followers")
    if value is None:
        return None
    number = _number(value, "author_followers")
    if number != int(number) or number < 0:
        raise RecordError(f"bad number in 'author_followers': {value!r} (want an integer >= 0)")
    return int(number)


def _rating(record: dict[str, Any]) -> float | None:
    value = _present(record, "rating")
    if value is None:
        return None
    number = _number(value, "rating")
    if not 0 <= number <= 5:
        raise RecordError(f"bad number in 'rating': {value!r} (want 0 to 5)")
    return float(number)


def _number(value: Any, key: str) -> int | float:
    """A finite JSON number or numeric CSV text; booleans are not numbers here."""
    if isinstance(value, str):
        try:
            number: int | float = int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            raise RecordError(f"bad number in '{key}': {value!r}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        raise RecordError(f"bad number in '{key}': {value!r}")
    if not math.isfinite(number):
        raise RecordError(f"bad number in '{key}': {value!r}")
    return number


def _kind(record: dict[str, Any], default: str, rating: float | None) -> str:
    value = _optional_str(record, "kind")
    value = value.lower() if value is not None else None
    if value is None:
        return "review" if rating is not None else default
    if value not in POST_KINDS:
        raise RecordError(f"'kind' must be one of {', '.join(POST_KINDS)}, got {value!r}")
    return value
