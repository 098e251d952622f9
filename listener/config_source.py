"""Reading the config file: YAML text to data, each key's line remembered, secrets resolved.

:mod:`listener.config` validates what this returns; this module only reads. The file is
bounded (size, UTF-8, alias expansion, duplicate keys are errors), every node's line is indexed
by its key path so a validation error can name ``file, line N, key 'rules[1].when'``, and
``{"$env": NAME}`` / ``"${NAME}"`` are replaced by the environment's values, each registered for
log redaction; an unset one is reported by key path, for the caller to decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from listener.core.errors import ConfigError
from listener.core.log import register_secret

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Loc = tuple[str | int, ...]
MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few KiB; a larger file is a mistake or an attack
MAX_ALIASES = 100  # aliases (*name) in one config: a few share defaults; a bomb needs many
MAX_ALIAS_NODES = 10_000  # nodes all aliases together may stand for, expanded


def read_text(file: Path) -> str:
    """The file as text: at most :data:`MAX_CONFIG_BYTES`, UTF-8, or a ConfigError saying so
    in one line (not a traceback), with the line of the first undecodable byte."""
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(file)) from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is "
                          "a few KiB: is this the right file?", file=str(file))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as "
                          "UTF-8", file=str(file), line=line) from None


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the checks a config needs and YAML leaves out.

    - A key given twice in one mapping is an error naming both lines (YAML keeps the last one
      silently: a second ``rules:`` dropped the first). Checked on the composed node, before
      the constructor flattens ``<<`` merge keys, whose overriding is legitimate.
    - At most :data:`MAX_ALIASES` aliases, standing for at most :data:`MAX_ALIAS_NODES` nodes
      expanded, and none inside the node it names: every later step (line index, secret
      resolution, validation) walks the expanded tree, so a "billion laughs" document of a few
      hundred bytes would otherwise take minutes and gigabytes. Counted as aliases are composed,
      so the bomb is refused before it is built.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self._aliases = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for, expanded
        self._path: list[Any] = []  # key path of the node being composed, for messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self._count_alias(self.peek_event())
        part = index.value if isinstance(index, yaml.ScalarNode) else index  # a value: its key
        self._path.append(part if isinstance(part, str | int) else None)
        try:
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line, ident = key.start_mark.line + 1, (key.tag, key.value)
            if ident in seen:
                loc = tuple(part for part in self._path if part is not None)
                raise ConfigError(f"duplicate key '{key.value}' (first at line {seen[ident]})",
                                  file=self.file, line=line, key=_key((*loc, key.value)))
            seen[ident] = line
        return node

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        """Refuse the alias that passes a limit, naming its line."""
        line = event.start_mark.line + 1
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # undefined: the composer reports it
        if target.end_mark is None:
            raise ConfigError(f"alias *{event.anchor} refers to a node that contains it",
                              file=self.file, line=line)
        self._aliases += 1
        self._alias_nodes += self._size(target)
        if self._aliases > MAX_ALIASES:
            raise ConfigError(f"more than {MAX_ALIASES} aliases (*name); write the settings "
                              "out instead", file=self.file, line=line)
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise ConfigError(f"aliases (*name) expand to more than {MAX_ALIAS_NODES} values; "
                              "write the settings out instead", file=self.file, line=line)

    def _size(self, node: yaml.Node) -> int:
        """How many nodes ``node`` stands for with every alias in it expanded; memoised, so
        a node shared by many aliases is walked once however often it is counted."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size(item) for item in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size


def _compose(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, from ONE parse."""
    loader = _ConfigLoader(text, file)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def parse(text: str, file: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node, data = _compose(text, file)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from exc
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=file) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of settings", file=file, line=1)
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> ConfigError:
    """PyYAML's error as one line with the file and line."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: exc.position].count("\n") + 1
        return ConfigError(f"invalid YAML: character #x{exc.character:04x} is not allowed "
                           f"({exc.reason})", file=file, line=line)
    mark = getattr(exc, "problem_mark", None)
    reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return ConfigError(f"invalid YAML: {reason}", file=file,
                       line=mark.line + 1 if mark else None)


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, key_node.value)
            _index_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), lines)


@dataclass(frozen=True)
class Locator:
    file: str
    lines: dict[Loc, int]

    def error(self, loc: Loc, message: str) -> ConfigError:
        line = next((self.lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in self.lines),
                    None)
        return ConfigError(message, file=self.file, line=line, key=_key(loc) or None)


def _key(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def resolve(value: Any, loc: Loc, env: Any, missing: dict[Loc, str]) -> Any:
    """Replace ``{"$env": NAME}`` and ``${NAME}`` with environment values (registered secrets)."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = str(value["$env"])
            if name not in env:
                missing[loc] = name
                return None
            register_secret(env[name])
            return env[name]
        return {k: resolve(v, (*loc, k), env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, (*loc, i), env, missing) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                missing[loc] = name
                return ""
            register_secret(env[name])
            return env[name]

        return _ENV_REF.sub(sub, value)
    return value
