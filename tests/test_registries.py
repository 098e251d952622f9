"""Every registered source and sink imports, names itself as registered, and documents its keys."""

from __future__ import annotations

import pytest

from alerts.sinks import REGISTRY as SINKS
from alerts.sinks import sink_class
from listener.core.errors import ConfigError
from listener.sources import REGISTRY as SOURCES
from listener.sources import source_class


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sources(name: str) -> None:
    cls = source_class(name)
    assert cls.type == name and isinstance(cls.searches, bool)
    assert all(f.description for f in cls.Config.model_fields.values()), name


@pytest.mark.parametrize("name", sorted(SINKS))
def test_sinks(name: str) -> None:
    cls = sink_class(name)
    assert cls.type == name
    assert all(f.description for n, f in cls.Config.model_fields.items() if n != "type"), name


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid types are: " + ", ".join(sorted(SINKS))):
        sink_class("pager")
