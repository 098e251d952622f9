"""Import posts from JSON Lines or CSV files: backfills from other tools' exports, and live feeds.

``path`` may be a glob; each matching file is read incrementally. The cursor remembers, per file,
the bytes and lines consumed and which file that was (inode, device, a digest of its first bytes),
so lines appended later are imported on the next poll and nothing is read twice, while a replaced,
truncated or rewritten file is read again from the start (storage dedups on platform + id).

Only complete records are consumed: a last line without a newline is taken only when it already
parses as a whole record, since a writer may be in the middle of it. A bad record never stops an
import; it becomes a ``Rejected("<file>:<line>", reason)``. Field rules live in ``records``.

Cursor (JSON-serialisable; every page carries a fresh copy of all of it)::

    {"version": 1,
     "files": {"/abs/path/posts.csv": {"ino": 1234, "dev": 64768, "offset": 5120, "line": 41,
                                       "header": ["id", "text", ...] or null,
                                       "head": "<sha256 of the first min(offset, 1024) bytes>"}}}
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

from pydantic import Field

from listener.core.errors import ConfigError, SourceError
from listener.core.models import Clock, Page, Post, Rejected
from listener.sources.base import SourceConfig, SourceContext
from listener.sources.cursor import CursorLayout
from listener.sources.file.records import (
    BOM,
    RawRecord,
    RecordDefaults,
    RecordError,
    check_header,
    parse_csv_row,
    parse_json_line,
    read_csv_record,
    record_to_post,
)

log = logging.getLogger(__name__)

MAX_QUOTED_LINES = 1000
"""A CSV record may span this many lines inside quotes; past that, a stray quote is assumed."""

_HEAD_BYTES = 1024
_CURSOR = CursorLayout(
    version=1, section="files", log=log,
    not_understood="source '%s': cursor not understood; reading every file again",
    bad_entry="source '%s': bad cursor entry for %s; reading it again",
)
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
_GLOB_MAGIC = re.compile(r"[*?[]")


class FileSourceConfig(SourceConfig):
    """Keys of a ``type: file`` source."""

    path: str = Field(
        min_length=1,
        description="file path or glob ('**' recurses); relative paths start at the config's folder",
    )
    format: Literal["auto", "jsonl", "csv"] = Field(
        "auto",
        description="auto picks by extension: .jsonl/.ndjson/.json are JSON Lines, .csv is CSV",
    )
    platform: str = Field(
        "file", min_length=1, description="platform of records that have no 'platform' field"
    )
    kind: Literal["mention", "review"] = Field(
        "mention",
        description="kind of records that have no 'kind' field (those with a rating are reviews)",
    )
    batch_size: int = Field(
        500, ge=1, description="records per page; each page is stored in one transaction"
    )


@dataclass
class _FileState:
    """Cursor entry of one file: how far it was read, and which file that was."""

    ino: int
    dev: int
    offset: int = 0
    line: int = 0
    header: list[str] | None = None
    head: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # copies the header list too, so saved cursors never change later

    @classmethod
    def from_json(cls, data: Any) -> _FileState | None:
        """The state saved by :meth:`to_json`, or None when the entry is not one."""
        if not isinstance(data, dict) or set(data) != {f for f in cls.__dataclass_fields__}:
            return None
        numbers = [data[key] for key in ("ino", "dev", "offset", "line")]
        header = data["header"]
        if (
            any(type(number) is not int or number < 0 for number in numbers)
            or not isinstance(data["head"], str)
            or not (header is None or isinstance(header, list))
            or not all(isinstance(name, str) for name in header or [])
        ):
            return None
        return cls(**{**data, "header": None if header is None else list(header)})


def _load_cursor(cursor: Any, paths: list[str], source: str) -> dict[str, _FileState]:
    """Per-file states for the files matched now; anything unreadable restarts that file."""
    return _CURSOR.load(cursor, source, _FileState.from_json, {path: path for path in paths})


def _dump_cursor(states: dict[str, _FileState]) -> dict[str, Any]:
    return _CURSOR.dump({p: s.to_json() for p, s in states.items()})


def _head_digest(handle: BinaryIO, length: int) -> str:
    """Digest of the file's first bytes, to notice a file rewritten in place (``cat > f``)."""
    position = handle.tell()
    handle.seek(0)
    digest = hashlib.sha256(handle.read(length)).hexdigest()
    handle.seek(position)
    return digest


class FileSource:
    """Posts from JSON Lines / CSV files matched by a path or glob, read incrementally."""

    type: ClassVar[str] = "file"
    searches: ClassVar[bool] = False  # imports everything; filters only when `brands` is set
    Config: ClassVar[type[SourceConfig]] = FileSourceConfig

    def __init__(self, config: FileSourceConfig, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.name = config.name
        self._defaults = RecordDefaults(
            source=config.name, platform=config.platform, kind=config.kind, brand=config.brand
        )

    def fetch(self, cursor: Any) -> Iterator[Page]:
        """Pages of new records, file by file in path order; ``cursor=None`` reads everything."""
        paths = self._matching_files()
        if not paths:
            log.warning("source '%s': path %r matched no files", self.name, self.config.path)
            return
        formats = {path: self._format_of(path) for path in paths}  # fail before any page
        states = _load_cursor(cursor, paths, self.name)
        for path in paths:
            yield from self._fetch_file(path, formats[path], states)

    def check(self) -> str:
        """``listener doctor``: the path's files (or a glob's folder) exist and are readable."""
        paths = self._matching_files()
        folder = os.path.join(os.path.abspath(self.ctx.base_dir), os.path.expanduser(self.config.path))
        while _GLOB_MAGIC.search(folder):  # a glob's folder: where new files will appear
            folder = os.path.dirname(folder)
        if not paths and not (os.path.isdir(folder) and os.access(folder, os.R_OK | os.X_OK)):
            raise SourceError(f"source '{self.name}': {self.config.path!r} matches no file")
        unreadable = [p for p in paths if not os.access(p, os.R_OK)]
        if unreadable:
            raise SourceError(f"source '{self.name}': cannot read {', '.join(unreadable[:3])}; "
                              "check that the listener's user may read it")
        return f"{len(paths)} file(s) readable" if paths else f"no file yet; {folder} is readable"

    def _matching_files(self) -> list[str]:
        pattern = os.path.expanduser(self.config.path)
        base = os.path.abspath(self.ctx.base_dir)
        if not _GLOB_MAGIC.search(pattern):
            candidates = [os.path.join(base, pattern)]
        elif os.path.isabs(pattern):
            candidates = glob.glob(pattern, recursive=True)
        else:
            candidates = glob.glob(os.path.join(glob.escape(base), pattern), recursive=True)
        return sorted({os.path.abspath(p) for p in candidates if os.path.isfile(p)})

    def _format_of(self, path: str) -> str:
        if self.config.format != "auto":
            return self.config.format
        fmt = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if fmt is None:
            raise ConfigError(
                f"source '{self.name}': cannot tell the format of {path} from its extension; "
                "name files .jsonl, .ndjson, .json or .csv, set format: jsonl or csv, "
                "or narrow the path",
                key="format",
            )
        return fmt

    def _display(self, path: str) -> str:
        """The name used in ``Rejected.where``: relative to base_dir when inside it."""
        try:
            return str(Path(path).relative_to(os.path.abspath(self.ctx.base_dir)))
        except ValueError:
            return path

    def _fetch_file(self, path: str, fmt: str, states: dict[str, _FileState]) -> Iterator[Page]:
        shown = self._display(path)
        try:
            handle = open(path, "rb")  # closed by the with below
        except FileNotFoundError:
            log.info("source '%s': %s disappeared before it could be read", self.name, shown)
            return
        except OSError as exc:
            raise SourceError(
                f"source '{self.name}': cannot read {path}: {exc.strerror}; "
                "check that the file is readable by the listener"
            ) from exc
        with handle:
            previous = states.get(path)
            before = previous.to_json() if previous else None
            states[path] = self._resume(handle, previous, shown)
            reader = _FileReader(handle, states[path], fmt, shown, self._defaults, self.ctx.clock)
            yield from self._pages(reader, states, before)

    def _resume(self, handle: BinaryIO, previous: _FileState | None, shown: str) -> _FileState:
        """The saved state if it still describes this file, else a fresh one from byte 0."""
        st = os.fstat(handle.fileno())
        if previous is None:
            return _FileState(ino=st.st_ino, dev=st.st_dev)
        if (st.st_ino, st.st_dev) != (previous.ino, previous.dev):
            why = "replaced"
        elif st.st_size < previous.offset:
            why = "truncated"
        elif previous.head != _head_digest(handle, min(previous.offset, _HEAD_BYTES)):
            why = "rewritten"
        else:
            return previous
        log.info("source '%s': %s was %s; reading it from the start", self.name, shown, why)
        return _FileState(ino=st.st_ino, dev=st.st_dev)

    def _pages(
        self, reader: _FileReader, states: dict[str, _FileState], before: dict[str, Any] | None
    ) -> Iterator[Page]:
        """Batches of one file; the last page also moves the cursor past trailing rejects/blanks."""
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for item in reader.records():
            (posts if isinstance(item, Post) else rejected).append(item)
            if len(posts) + len(rejected) >= self.config.batch_size:
                reader.refresh_head()
                yield Page(posts=posts, cursor=_dump_cursor(states), rejected=rejected)
                posts, rejected = [], []
                before = reader.state.to_json()
        reader.refresh_head()
        if posts or rejected or reader.state.to_json() != before:
            yield Page(posts=posts, cursor=_dump_cursor(states), rejected=rejected)


class _FileReader:
    """Reads one open file from its state's offset, record by record.

    The state is advanced past each record *before* the record is yielded and never past a
    record not yet yielded, so a page's cursor covers exactly the records handed out so far.
    """

    def __init__(
        self,
        handle: BinaryIO,
        state: _FileState,
        fmt: str,
        shown: str,
        defaults: RecordDefaults,
        clock: Clock,
    ) -> None:
        self.handle, self.state, self.fmt, self.shown = handle, state, fmt, shown
        self.defaults, self.clock = defaults, clock
        self._head_length = min(state.offset, _HEAD_BYTES) if state.head else -1

    def records(self) -> Iterator[Post | Rejected]:
        self.handle.seek(self.state.offset)
        return self._jsonl() if self.fmt == "jsonl" else self._csv()

    def refresh_head(self) -> None:
        """Keep ``state.head`` the digest of the first min(offset, 1024) bytes."""
        length = min(self.state.offset, _HEAD_BYTES)
        if length != self._head_length:
            self.state.head = _head_digest(self.handle, length)
            self._head_length = length

    def _consume(self, lines: list[bytes]) -> None:
        self.state.offset += sum(len(line) for line in lines)
        self.state.line += len(lines)

    def _reject(self, line_no: int, reason: str) -> Rejected:
        return Rejected(where=f"{self.shown}:{line_no}", reason=reason)

    def _convert(self, record: dict[str, Any], line_no: int) -> Post | Rejected:
        """The record as a Post, or rejected with its file and line.

        Beyond the field rules' RecordError, any error a record's values provoke (in a field
        rule or in ``Post`` itself) rejects that record alone: a record is data, and no data
        may stop an import and hold the cursor in front of it forever.
        """
        try:
            return record_to_post(record, self.defaults, self.clock)
        except RecordError as exc:
            return self._reject(line_no, str(exc))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            return self._reject(line_no, f"cannot read the record: {type(exc).__name__}: {exc}")

    def _strip_bom(self, line: bytes) -> bytes:
        return line[len(BOM) :] if self.state.offset == 0 and line.startswith(BOM) else line

    def _jsonl(self) -> Iterator[Post | Rejected]:
        while line := self.handle.readline():
            complete = line.endswith(b"\n")
            content = self._strip_bom(line)
            line_no = self.state.line + 1
            if not content.strip():
                if not complete:
                    return
                self._consume([line])
                continue
            try:
                record = parse_json_line(content)
            except RecordError as exc:
                if not complete:
                    return  # a writer may be mid-line: try again next poll
                self._consume([line])
                yield self._reject(line_no, str(exc))
                continue
            self._consume([line])
            yield self._convert(record, line_no)

    def _csv(self) -> Iterator[Post | Rejected]:
        while (raw := self._read_csv_record()) is not None:
            line_no = self.state.line + 1
            if not raw.closed:
                if len(raw.lines) < MAX_QUOTED_LINES:
                    self._warn_open_quote(raw, line_no)
                    return
                self._consume(raw.lines[:1])  # assume a stray quote: read on after its line
                self.handle.seek(self.state.offset)
                reason = f"unterminated quoted field (not closed within {MAX_QUOTED_LINES} lines)"
                yield self._reject(line_no, reason)
                continue
            try:
                row = self._csv_row(raw)
            except RecordError as exc:
                if not raw.complete:
                    return
                yield self._reject(line_no, str(exc))
                if self.state.header is None:
                    return  # bad header: leave the file where it is, report it each poll
                self._consume(raw.lines)
                continue
            if not raw.complete and (self.state.header is None or not row):
                return  # a writer may be mid-line; a header is only trusted with its newline
            self._consume(raw.lines)
            if not row:
                continue  # blank line, or a row of empty cells
            if self.state.header is None:
                self.state.header = row
            else:
                yield self._convert(dict(zip(self.state.header, row, strict=True)), line_no)

    def _read_csv_record(self) -> RawRecord | None:
        at_start = self.state.offset == 0
        return read_csv_record(self.handle.readline, MAX_QUOTED_LINES, skip_bom=at_start)

    def _csv_row(self, raw: RawRecord) -> list[str]:
        """The header's names, a row's fields, or ``[]`` for a blank or all-empty row."""
        if raw.error:
            raise RecordError(raw.error)
        if not raw.text.strip():
            return []
        row = parse_csv_row(raw.text)
        if self.state.header is None:
            return check_header(row)
        if not any(value.strip() for value in row):
            return []  # spreadsheets pad exports with rows of empty cells
        if len(row) != len(self.state.header):
            raise RecordError(
                f"wrong column count: expected {len(self.state.header)} as in the header, "
                f"got {len(row)}"
            )
        return row

    def _warn_open_quote(self, raw: RawRecord, line_no: int) -> None:
        if raw.lines[-1].endswith(b"\n"):  # without a newline it is just a writer mid-line
            log.warning(
                "%s:%d: a quoted field is still open at the end of the file; the records from "
                "here on wait until it is closed (or %d lines pass)",
                self.shown,
                line_no,
                MAX_QUOTED_LINES,
            )
