"""The config loader on arbitrary input: a Config or a ConfigError, never anything else.

Two kinds of input: any text at all (most of it is not YAML), and YAML documents built from the
real setting names with arbitrary values, which reach the validation of every section, plugin
and cross-reference. Secrets are looked up in an empty environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from listener.config import Config, load_config
from listener.core.errors import ConfigError
from tests.property.strategies import PROPERTY

KEYS = ("storage", "path", "classifier", "model", "batch_size", "schedule", "dispatch", "log",
        "format", "metrics", "port", "host", "brands", "name", "query", "sources", "type",
        "interval", "enabled", "rules", "when", "sentiment", "min_probability", "keywords",
        "destinations", "webhook_url", "optional", "$env", "spikes", "digests", "all", "any",
        "not", "max_alerts", "count", "per_seconds", "brand", "languages", "unhealthy_after")
TYPES = ("file", "x", "reddit", "console", "slack", "email", "webhook", "jira", "rss", "nope")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(KEYS + TYPES + ("${HOME}", "${NOT_SET}", "negative", "a OR (b")),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)
plugins = st.builds(
    lambda kind, name, extra: {"type": kind, "name": name, **extra},
    st.sampled_from(TYPES), st.sampled_from(["a", "b", "bad name"]),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
    st.fixed_dictionaries({"sources": st.lists(plugins, max_size=3),  # reach every plugin
                           "destinations": st.lists(plugins, max_size=3)},
                          optional={"rules": values, "brands": values}),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-property")


def load(folder: Path, text: str) -> Config | ConfigError:
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        return load_config(path, environ={})
    except ConfigError as exc:
        assert str(exc).startswith(str(path)) or "config" in str(exc)
        return exc


@PROPERTY
@given(st.text(max_size=300))
def test_any_text_loads_or_is_a_config_error(folder: Path, text: str) -> None:
    load(folder, text)


@PROPERTY
@given(documents)
def test_any_document_of_real_keys_loads_or_is_a_config_error(
    folder: Path, document: dict[str, Any]
) -> None:
    outcome = load(folder, yaml.safe_dump(document, allow_unicode=True))
    if isinstance(outcome, ConfigError) and outcome.key is not None:
        assert outcome.line is not None  # a named key always comes with its line
