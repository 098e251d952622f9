"""CSV, JSON and TSV downloads of what a page shows.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) get a leading apostrophe: post text is written by strangers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from flask import Response, stream_with_context

EXPORT_LIMIT = 10_000  # rows in one download; narrow the filters for more
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value safe to open in a spreadsheet; numbers and None pass through."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _download(body: str, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_response(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], filename: str
                 ) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return _download(out.getvalue(), "text/csv", filename)


def _csv_lines(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    for values in chain([columns], rows):
        writer.writerow([csv_cell(v) for v in values])
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def csv_stream(rows: Iterable[Sequence[Any]], columns: Sequence[str], filename: str
               ) -> Response:
    """A CSV download written row by row as ``rows`` are read (the audit log has no limit):
    the request's context, and so its database connection, stays open until the end."""
    response = Response(stream_with_context(_csv_lines(rows, columns)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def json_response(payload: Any, filename: str) -> Response:
    return _download(json.dumps(payload, ensure_ascii=False, indent=1), "application/json",
                     filename)


def tsv_response(header: Sequence[str], rows: Iterable[Sequence[str]], filename: str) -> Response:
    """The shared training format: a header line, tab-separated, no quoting (texts hold no
    tabs or newlines: the rows come with white space folded)."""
    lines = ["\t".join(header), *("\t".join(row) for row in rows)]
    return _download("\n".join(lines) + "\n", "text/tab-separated-values", filename)
