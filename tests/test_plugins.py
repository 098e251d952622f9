"""Third-party sources and sinks through entry points (issue 16): a package installed next to
listener adds a destination type without touching listener's code.

The "installed package" is real: a module and a ``*.dist-info`` folder with ``entry_points.txt``
on ``sys.path``, found by :mod:`importlib.metadata` exactly as pip would leave them.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.sinks import sink_class
from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.models import AlertMessage, Post, Score
from listener.sources import source_class

SINK = '''
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from alerts.sinks.base import SinkConfig


class JsonFileSinkConfig(SinkConfig):
    type: Literal["jsonfile"] = "jsonfile"
    path: str = Field(description="where each alert is appended, one JSON object a line")


class JsonFileSink:
    Config: ClassVar[type[JsonFileSinkConfig]] = JsonFileSinkConfig
    type: ClassVar[str] = "jsonfile"

    def __init__(self, config: JsonFileSinkConfig) -> None:
        self.name, self.path = config.name, Path(config.path)

    def send(self, message) -> str | None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"alert": message.alert_id, "text": message.post.text}) + "\\n")
        return None
'''


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``listener_jsonfile`` with entry points, as pip installs one."""
    site = tmp_path / "site"
    (site / "listener_jsonfile").mkdir(parents=True)
    (site / "listener_jsonfile" / "__init__.py").write_text(SINK, encoding="utf-8")
    info = site / "listener_jsonfile-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: listener-jsonfile\n"
                                   "Version: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [listener.sinks]
        jsonfile = listener_jsonfile:JsonFileSink
        slack = listener_jsonfile:JsonFileSink

        [listener.sources]
        jsonfile = listener_jsonfile:NoSuchSource
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


def test_an_installed_package_adds_a_destination_type(installed: Path) -> None:
    config = installed / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        storage: {{path: l.db}}
        sources:
          - {{type: file, name: imports, path: posts.jsonl}}
        rules:
          - {{name: all, destinations: [archive]}}
        destinations:
          - {{type: jsonfile, name: archive, path: {installed / 'alerts.jsonl'}}}
        """), encoding="utf-8")
    loaded = load_config(config, environ={})
    settings = loaded.destinations[0]
    sink = sink_class("jsonfile")(settings)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    sink.send(AlertMessage("a1", ("all",), "archive", Post("x", "1", "hello", now),
                           Score("neutral", .1, .8, .1, 0, "m", "1")))
    lines = (installed / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"alert": "a1", "text": "hello"}]


def test_a_built_in_type_is_never_replaced_by_a_package(installed: Path) -> None:
    assert sink_class("slack").__module__ == "alerts.sinks.slack.sink"


def test_unknown_types_list_the_installed_ones_too(installed: Path) -> None:
    with pytest.raises(ConfigError, match=r"valid types are: .*jsonfile.*slack"):
        sink_class("nope")
    with pytest.raises(ConfigError, match=r"valid types are: .*jsonfile"):
        source_class("nope")
