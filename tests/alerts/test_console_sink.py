"""ConsoleSink: prints readable alerts to the stream it was given or configured."""

from __future__ import annotations

import io

import pytest

from alerts.sinks import sink_class
from alerts.sinks.console import ConsoleSink, ConsoleSinkConfig
from tests.alerts.factories import make_alert


def test_prints_alert_to_given_stream() -> None:
    out = io.StringIO()
    sink = ConsoleSink(ConsoleSinkConfig(name="console"), stream=out)
    assert sink.send(make_alert(text="app broken\x1b[2J again")) is None
    sink.close()
    text = out.getvalue()
    assert "Acme · mastodon" in text and "negative 0.91" in text and "a1b2c3d4e5f6" in text
    assert "app broken[2J again" in text and "\x1b" not in text
    assert text.endswith("\n\n") and sink.name == "console"


def test_configured_stream_is_looked_up_at_send(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleSink(ConsoleSinkConfig(name="err", stream="stderr")).send(make_alert())
    ConsoleSink(ConsoleSinkConfig(name="out")).send(make_alert(author="bob"))
    captured = capsys.readouterr()
    assert "author: jane" in captured.err and "author: bob" in captured.out


def test_registry_and_config() -> None:
    assert sink_class("console") is ConsoleSink and ConsoleSink.Config is ConsoleSinkConfig
    config = ConsoleSinkConfig.model_validate({"type": "console", "name": "c"})
    assert config.stream == "stdout"
    with pytest.raises(ValueError):
        ConsoleSinkConfig.model_validate({"type": "console", "name": "c", "stream": "file"})
