"""`listener serve`: the serve: config section, and the real command in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from listener.config import is_loopback, load_config
from listener.core.errors import ConfigError
from listener.web.serve import brand_words
from tests.e2e import cli_env
from tests.web.conftest import TOKEN

BASE = "storage:\n  path: listener.db\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    return path


def test_serve_settings_default_to_loopback_without_token(tmp_path: Path) -> None:
    serve = load_config(write(tmp_path, ""), environ={}).serve
    assert (serve.host, serve.port, serve.token) == ("127.0.0.1", 8765, None)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_a_public_address_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "serve:\n  host: 0.0.0.0\n"), environ={})
    assert info.value.key == "serve.token" and info.value.line == 3
    assert "needs an access token" in str(info.value)
    text = 'serve:\n  host: 0.0.0.0\n  token: {"$env": LISTENER_WEB_TOKEN}\n'
    config = load_config(write(tmp_path, text), environ={"LISTENER_WEB_TOKEN": TOKEN})
    assert config.serve.token == TOKEN
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(write(tmp_path, text), environ={"LISTENER_WEB_TOKEN": "short"})


def test_brand_words_come_from_names_and_queries(tmp_path: Path) -> None:
    text = ("brands:\n  - name: acme\n    query: '(\"acme cloud\" OR @AcmeCloud) -giveaway'\n"
            "sources:\n  - {type: file, name: f, path: x.jsonl, brands: [acme]}\n")
    assert brand_words(load_config(write(tmp_path, text), environ={})) == {
        "acme", "cloud", "acmecloud"}


def test_the_serve_command_prints_its_url_and_serves(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    env = cli_env("http://127.0.0.1:9/unused")
    process = subprocess.Popen(
        [sys.executable, "-m", "listener", "serve", "--config", str(config), "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("dashboard: http://127.0.0.1:") and line.endswith("/")
        url = line.removeprefix("dashboard: ")
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200 and "Overview" in response.text
        assert httpx.get(url + "static/app.css", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_serve_command_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "listener", "serve", "--config", str(write(tmp_path, "")),
         "--host", "0.0.0.0", "--port", "0"],
        env=cli_env("http://127.0.0.1:9/unused"), capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "dashboard:" not in result.stdout
    assert "key 'serve.token'" in result.stderr and "needs an access token" in result.stderr
