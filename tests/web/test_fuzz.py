"""Issue 14 #7: no query parameter, form field or path segment of any route answers 5xx.

Every route of ``app.url_map`` is fuzzed with hypothesis (fixed seed, bounded examples): the
parameter names are the ones the app itself reads (recorded while each route is requested
once with plain values), plus names nobody reads; the values are text, unicode, lone
surrogates (percent-escaped as a browser or script could send them), huge and negative
numbers, dates and times at the ends of the calendar, full-text search syntax and the values
each filter accepts. Errors in the app propagate, so a failure shows its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import Rule

from listener.web.security import safe_next
from tests.web.conftest import TOKEN, make_app
from tests.web.seed import Seeded
from tests.web.seed import seed as seed_db

SEED = 20261120
FUZZ = settings(max_examples=800, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
READ: set[str] = set()  # every query or form name the app asked for


class _RecordingDict(ImmutableMultiDict):  # type: ignore[type-arg]
    """Query and form values that note which names the app reads."""

    def __getitem__(self, key: Any) -> Any:
        READ.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:  # noqa: A002
        READ.add(key)
        return super().get(key, default, type)

    def __contains__(self, key: object) -> bool:
        READ.add(str(key))
        return super().__contains__(key)


class _RecordingRequest(Request):
    parameter_storage_class = _RecordingDict


def _plain_path_values(ids: Seeded) -> dict[str, str]:
    """A working value for each path variable, to request every route once."""
    return {"post_id": str(ids.top_post), "alert_id": ids.failed_alert, "fmt": "csv",
            "field": "sentiment", "filename": "app.css", "name": "nobody"}


def _fill(rule: Rule, values: dict[str, str]) -> str:
    """The rule's path with its variables replaced by (already escaped) values."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Flask, FlaskClient, str]]:
    """The app on a seeded database, errors propagating; a client holding the CSRF cookie and
    the token its forms carry."""
    path: Path = tmp_path_factory.mktemp("fuzz") / "listener.db"
    ids = seed_db(path)
    app = make_app(path)
    app.request_class = _RecordingRequest
    app.config["PROPAGATE_EXCEPTIONS"] = True
    client = app.test_client()
    html = client.get(f"/posts/{ids.top_post}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf
    plain = _plain_path_values(ids)
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            client.open(_fill(rule, plain), method=method, data={"csrf": csrf.group(1)}).close()
    yield app, client, csrf.group(1)


def _routes(app: Flask, method: str) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if method in (r.methods or ())),
                  key=lambda r: r.rule)


# --- values -------------------------------------------------------------------------------
_ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
_FTS = st.lists(st.sampled_from(
    ['refund', '"', "*", "^", "(", ")", ":", "text", "NEAR", "NEAR(", ",", "-", "+", "OR", "AND",
     "NOT", "{", "}", "0", "-1", "99999999999999999999", ".", "'", "rowid", "rank", "posts_fts",
     "\x00", "é", "\u202e", "\ufffd", "near/3", "a*b", "\\"]), max_size=8)
_KNOWN = st.sampled_from(
    ["24h", "7d", "30d", "90d", "1y", "hour", "day", "week", "month", "new", "handled",
     "not_relevant", "all", "negative", "neutral", "positive", "acme", "x-main", "en", "de",
     "csv", "json", "sentiment", "urgency", "relevance", "complaint", "1", "0", "10000", "10001",
     "0123456789abcdef", "/", "//evil.example", "/\\evil.example", "https://evil.example/",
     "/\t/evil.example", "/\r\nSet-Cookie: x=1", "/%0a", "/\x7f",
     "pending", "failed", "delivered", "support-slack", "unhappy"])
_OFFSETS = st.sampled_from(["", "Z", "+00:00", "-05:00", "+14:00", "-23:59", "+24:00"])
_TIMES = st.builds(lambda d, z: d.isoformat() + z, st.datetimes(), _OFFSETS)
_NUMBERS = st.one_of(st.integers(), st.integers(min_value=2**62, max_value=10**40),
                     st.integers(max_value=-1), st.floats()).map(str)
VALUES = st.one_of(
    st.just(""), _KNOWN, st.dates().map(str), _TIMES, _NUMBERS,
    _FTS.map(" ".join), _FTS.map("".join), st.text(max_size=30), st.text(_ANY_CHAR, max_size=12),
    st.text(_ANY_CHAR, min_size=190, max_size=260),
    st.sampled_from(["²", "١٢", "٣", "𝟙", "1_0", " 1", "+1", "0x10", "1e3", "٠"]),  # not ASCII digits
)
# a value each filter accepts: a request fuzzes one or two names and keeps the others valid,
# so the fuzzed value reaches the code past the other parameters' checks
VALID = {"range": ["24h", "7d", "30d", "90d"], "bucket": ["hour", "day", "week"],
         "status": ["new", "handled", "all", "failed", "pending"],
         "sentiment": ["negative", "neutral"], "page": ["1", "2", "3"],
         "end": ["2026-11-20", "2026-11-20T08:00Z", "2026-11-18T08:00:00+02:00"],
         "brand": ["acme", "globex"], "source": ["x-main", "reddit"], "lang": ["en", "de"],
         "q": ["refund", '"charged twice" OR log*', "mañana", "طلبي"],
         "incident": ["0123456789abcdef"], "unsupported": ["1", "0", ""],
         "destination": ["support-slack", "zendesk"], "rule": ["unhappy"],
         "field": ["sentiment", "urgency", "relevance"],
         "label": ["negative", "complaint", "not_relevant"], "next": ["/queue", "/"]}
_PATH_VALUES = st.one_of(VALUES, st.integers(min_value=0).map(str),
                         st.integers(min_value=2**63 - 2, max_value=2**70).map(str))


def _escape(value: str, safe: str = "") -> str:
    """Percent-escape as UTF-8, lone surrogates as the bytes a careless client would send."""
    return quote(value, safe=safe, errors="surrogatepass")


@st.composite
def _request(draw: st.DrawFn, app: Flask, method: str) -> tuple[str, dict[str, str]]:
    """A URL for one route, query string included, and form fields (for POST)."""
    rule = draw(st.sampled_from(_routes(app, method)))
    path = {name: _escape(draw(_PATH_VALUES), "/" if name == "filename" else "")
            for name in rule.arguments}
    params = draw(_parameters())
    query = "&".join(f"{_escape(k)}={_escape(v)}" for k, v in params.items())
    form = draw(_parameters()) if method == "POST" else {}
    return _fill(rule, path) + (f"?{query}" if query else ""), form


@st.composite
def _parameters(draw: st.DrawFn) -> dict[str, str]:
    """Some names the app reads with valid values, then one or two (or unknown) fuzzed."""
    known = sorted(READ)
    names = draw(st.lists(st.sampled_from(known), unique=True, max_size=6))
    params = {name: draw(st.sampled_from(VALID.get(name, ["1"]))) for name in names}
    fuzzed = st.one_of(st.sampled_from(known), st.text(max_size=8))
    params.update(draw(st.dictionaries(fuzzed, VALUES, min_size=1, max_size=2)))
    return params


def _check(client: FlaskClient, method: str, url: str, form: dict[str, str]) -> None:
    body = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            for k, v in form.items()}
    response = client.open(url, method=method, data=body)
    response.get_data()
    response.close()
    assert response.status_code < 500, (method, url, form, response.status_code)


def test_the_recorded_parameters_cover_every_filter(fuzzed: tuple[Flask, FlaskClient, str]) -> None:
    assert {"range", "bucket", "end", "brand", "source", "sentiment", "lang", "status", "q",
            "page", "incident", "destination", "rule", "next", "field", "label", "csrf",
            "unsupported"} <= READ


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_no_get_parameter_answers_5xx(fuzzed: tuple[Flask, FlaskClient, str], data: st.DataObject
                                      ) -> None:
    app, client, _ = fuzzed
    url, _ = data.draw(_request(app, "GET"))
    _check(client, "GET", url, {})


@seed(SEED)
@settings(FUZZ, max_examples=250)
@given(data=st.data())
def test_no_form_field_answers_5xx(fuzzed: tuple[Flask, FlaskClient, str], data: st.DataObject
                                   ) -> None:
    app, client, csrf = fuzzed
    url, form = data.draw(_request(app, "POST"))
    _check(client, "POST", url, {**form, "csrf": csrf})


def test_the_reported_inputs_answer_400_or_404_with_a_sentence(
    fuzzed: tuple[Flask, FlaskClient, str]
) -> None:
    """The inputs of the issue: calendar ends (OverflowError) and ids SQLite cannot hold."""
    client = fuzzed[1]
    for view in ("/", "/api/overview", "/queue", "/api/queue", "/export/queue.csv"):
        for end in ("9999-12-31", "0001-01-01", "9999-12-31T23:59-05:00", "0001-01-01T00:00+01:00",
                    "1969-12-31", "3000-01-01", "3000-01-01T00:00:01Z"):
            response = client.get(view, query_string={"end": end})
            assert response.status_code == 400, (view, end)
            assert "must fall in the years 1970 to 2999" in response.get_data(
                as_text=True).replace("&#39;", "'"), (view, end)
        assert client.get(view, query_string={"end": "2999-12-31"}).status_code == 200
    for path in ("/posts/99999999999999999999999", "/api/posts/9223372036854775808"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert client.get("/api/posts/9223372036854775807").status_code == 404  # no such post
    for page in ("²", "١٢", "𝟙", "0", "10001", "-1"):
        for view in ("/api/queue", "/api/alerts"):
            response = client.get(view, query_string={"page": page})
            assert response.status_code == 400, (view, page)
            assert "'page' must be a number" in response.get_json()["error"]
    for q in ("(" * 120 + "refund", "NOT " * 40, "-refund", '"', "refund OR -twice"):
        response = client.get("/api/queue", query_string={"q": q})
        assert response.status_code == 400 and "search could not be read" in response.get_json(
            )["error"], q
    for q in ("refund:", "NEAR(a b, -1)", "^a*b"):  # the brand query language: FTS5's is text
        assert client.get("/api/queue", query_string={"q": q}).status_code == 200, q


_NEXT = st.text(st.sampled_from(["/", "\\", "\t", "\n", "\r", ":", "@", ".", "e", " ", "\x00", "%",
                                 "\x7f", "\u3000", "?", "#"]), max_size=12)


@seed(SEED)
@settings(FUZZ, max_examples=600)
@given(value=st.one_of(_NEXT.map(lambda v: "/" + v), _NEXT, st.text(_ANY_CHAR, max_size=12)))
def test_next_never_leaves_the_site(value: str) -> None:
    """Where forms send the browser back to: a local path whatever a browser makes of it
    (it drops tabs and newlines and reads a backslash as a slash)."""
    target = safe_next(value, "/fallback")
    seen = re.sub(r"[\t\n\r]", "", target).replace("\\", "/")
    assert target == "/fallback" or (seen.startswith("/") and not seen.startswith("//")
                                     and not urlsplit(seen).netloc), (value, target)


def test_a_tab_in_next_is_no_open_redirect(fuzzed: tuple[Flask, FlaskClient, str],
                                           tmp_path: Path) -> None:
    """Before: ``/\\t/evil.example`` passed the check and werkzeug sent
    ``Location: //evil.example``; a newline answered 500."""
    client = fuzzed[1]
    assert make_app(tmp_path / "t.db", token=TOKEN).test_client().post(
        "/login", data={"token": TOKEN, "next": "/\t/evil.example"}).headers["Location"] == "/"
    for target in ("/\t/evil.example", "/\n/evil.example", "/\r\nSet-Cookie: x=1"):
        response = client.post("/login", data={"next": target})
        assert response.status_code == 302 and response.headers["Location"] == "/", target
