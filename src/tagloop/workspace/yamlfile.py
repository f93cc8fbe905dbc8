"""YAML reading that remembers where every value came from.

pydantic reports errors by location path (``('tags', 0, 'rule')``); users need ``file:line:col``.
`load_yaml` returns the plain Python value together with a `Positions` map from each path to
its line and column, so a validation error can be pointed at the exact spot in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~10x faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the build of PyYAML
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based
    style: str | None = None  # scalar style: None (plain), "'", '"', "|" or ">"


@dataclass
class Positions:
    """Where each value of a loaded YAML document starts in its file."""

    file: str
    at: dict[PathKey, Pos] = field(default_factory=dict)
    keys: dict[PathKey, Pos] = field(default_factory=dict)  # where each mapping key is written
    lines: list[str] = field(default_factory=list)

    def locate(self, path: PathKey) -> str:
        """``file:line:col`` of ``path``, or of its nearest ancestor that has a position.

        A missing key has no position of its own; its parent mapping's position is the
        best place to point at.
        """
        key = tuple(path)
        while key not in self.at and key:
            key = key[:-1]
        pos = self.at.get(key)
        return f"{self.file}:{pos.line}:{pos.col}" if pos else self.file

    def locate_key(self, path: PathKey) -> str:
        """``file:line:col`` of the key (not the value) at ``path``."""
        pos = self.keys.get(tuple(path))
        return f"{self.file}:{pos.line}:{pos.col}" if pos else self.locate(path)

    def locate_in_scalar(self, path: PathKey, offset: int, text: str) -> tuple[str, str]:
        """``file:line:col`` of character ``offset`` of the string scalar ``text`` at
        ``path``, and that file line (for a caret display)."""
        pos = self.at.get(tuple(path))
        if pos is None:
            return self.locate(path), ""
        before = text[:offset]
        newlines = before.count("\n")
        col_in_line = offset - (before.rfind("\n") + 1)
        if pos.style in ("|", ">"):
            line = pos.line + 1 + newlines
            # A block scalar's indentation is that of its first non-empty line.
            first = next((x for x in self.lines[pos.line :] if x.strip()), "")
            indent = len(first) - len(first.lstrip(" "))
            col = indent + col_in_line + 1
        elif newlines:
            line, col = pos.line + newlines, col_in_line + 1
        else:
            line, col = pos.line, pos.col + col_in_line + (1 if pos.style in ("'", '"') else 0)
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return f"{self.file}:{line}:{col}", source


class YamlSyntaxError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.problem = message


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Positions]:
    """Parse one YAML file into Python values plus the position of every value.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.yaml"
    >>> _ = p.write_text("name: demo\\ntags:\\n  - a\\n  - b\\n", encoding="utf-8")
    >>> value, pos = load_yaml(p, "x.yaml")
    >>> value
    {'name': 'demo', 'tags': ['a', 'b']}
    >>> pos.locate(("tags", 1))
    'x.yaml:4:5'
    """
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(name, f"not UTF-8 text (byte {exc.start})") from exc
    positions = Positions(name, lines=text.splitlines())
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise YamlSyntaxError(where, f"YAML syntax error: {exc.problem}") from exc
    if node is None:
        return None, positions
    loader = _Loader("")
    try:
        return _Builder(loader, positions, name).build(node, ()), positions
    finally:
        loader.dispose()


@dataclass
class _Builder:
    loader: Any
    positions: Positions
    name: str

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        positions = self.positions
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        positions.at[path] = Pos(node.start_mark.line + 1, node.start_mark.column + 1, style)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                where = self._where(key_node)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlSyntaxError(where, "YAML merge keys (<<) are not supported")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlSyntaxError(where, "mapping keys must be plain values")
                key = self.scalar(key_node)
                if key in result:
                    raise YamlSyntaxError(where, f"duplicate key {key!r}")
                mark = key_node.start_mark
                positions.keys[(*path, key)] = Pos(mark.line + 1, mark.column + 1)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def _where(self, node: yaml.Node) -> str:
        return f"{self.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
