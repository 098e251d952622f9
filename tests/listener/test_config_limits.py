"""Issue 14, item 6: what YAML allows and a config must not — each a one-line error with file
and line, never a traceback, a silent loss or a hang.

Before: a key given twice kept only the last (``check-config`` said ok), a Latin-1 file printed a
traceback, and a "billion laughs" alias bomb hung while growing past 1 GB.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from listener.config import load_config
from listener.core.errors import ConfigError
from tests.e2e import cli_env, run_cli

VALID = """\
storage:
  path: listener.db
rules:
  - name: unhappy
    when: {sentiment: [negative]}
    destinations: [console]
destinations:
  - type: console
    name: console
"""
# nine levels of nine aliases: 9**9 (387 million) strings once expanded, from 500 bytes
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def error_for(tmp_path: Path, text: str | bytes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    return info.value


def check_config(path: Path) -> tuple[int, str]:
    """``listener check-config`` as a person runs it: a fresh process, its status and stderr."""
    result = run_cli(["check-config", str(path)], cli_env("http://127.0.0.1:9/unused"), 60)
    return result.returncode, result.stdout + result.stderr


def test_a_top_level_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID + "rules: []\n")
    assert (err.line, err.key) == (10, "rules")
    assert "duplicate key 'rules' (first at line 3)" in str(err)
    assert str(err).startswith(f"{tmp_path / 'config.yaml'}, line 10")
    status, output = check_config(tmp_path / "config.yaml")
    assert status != 0 and "duplicate key 'rules' (first at line 3)" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1


def test_a_key_given_twice_in_one_rule_names_its_path(tmp_path: Path) -> None:
    text = VALID.replace("    when:", "    name: second\n    when:")
    err = error_for(tmp_path, text)
    assert (err.line, err.key) == (5, "rules[0].name")
    assert "duplicate key 'name' (first at line 4)" in str(err)


def test_a_key_given_twice_on_one_line_is_caught_too(tmp_path: Path) -> None:
    err = error_for(tmp_path, "storage: {path: a.db, path: b.db}\n")
    assert err.line == 1 and "duplicate key 'path' (first at line 1)" in str(err)


def test_merge_keys_override_without_being_duplicates(tmp_path: Path) -> None:
    text = VALID + "  - &base {type: console, name: spare}\n  - <<: *base\n    name: spare2\n"
    config = load_config(write(tmp_path, text), environ={})
    assert [d.name for d in config.destinations] == ["console", "spare", "spare2"]


def test_a_file_that_is_not_utf8_is_one_line_with_its_line(tmp_path: Path) -> None:
    latin1 = VALID.replace("[negative]}", "[negative]} # café")
    err = error_for(tmp_path, latin1.encode("latin-1"))
    assert err.line == 5 and "not valid UTF-8 (byte 0xe9)" in str(err)
    status, output = check_config(tmp_path / "config.yaml")
    assert status != 0 and "Traceback" not in output and len(output.strip().splitlines()) == 1


def test_an_alias_bomb_fails_fast_in_bounded_memory(tmp_path: Path) -> None:
    path = write(tmp_path, BOMB)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 20 * 2**20, (elapsed, peak)
    assert "aliases (*name) expand to more than 10000 values" in str(info.value)
    assert info.value.line is not None


def test_more_than_a_hundred_aliases_are_refused(tmp_path: Path) -> None:
    text = "x: &x 1\nlist: [" + ", ".join(["*x"] * 101) + "]\n"
    err = error_for(tmp_path, text)
    assert err.line == 2 and "more than 100 aliases" in str(err)
    few = VALID + "  - &c {type: console, name: c1}\n" + "".join(
        f"  - {{<<: *c, name: c{i}}}\n" for i in range(2, 40))
    assert len(load_config(write(tmp_path, few), environ={}).destinations) == 40


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, "storage: &s {path: x.db, again: *s}\n")
    assert err.line == 1 and "alias *s refers to a node that contains it" in str(err)


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    started = time.monotonic()
    err = error_for(tmp_path, VALID + "# padding\n" * 120_000)  # 1.2 MB of comments
    assert time.monotonic() - started < 1.0
    assert "larger than 1024 KiB" in str(err) and str(err).startswith(str(tmp_path))


def test_nesting_too_deep_is_an_error_not_a_recursion_traceback(tmp_path: Path) -> None:
    err = error_for(tmp_path, "storage: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "nested too deeply" in str(err)


def test_a_character_yaml_forbids_is_one_line_with_its_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID + "# a NUL \x00 here\n")
    assert err.line == 10 and "#x0000" in str(err) and "\n" not in str(err)
