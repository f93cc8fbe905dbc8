"""Editing one tag's rule in its workspace file, leaving every other byte as it was.

Workspace files are the source of truth (config as code): the console's rule editor saves
by rewriting the ``rule:`` of one tag in its YAML file, so comments, key order and the
other tags stay exactly as their authors wrote them, and the change reads as a one-line
diff in version control. The edit is made on the text at the scalar's position (PyYAML's
node marks) and then checked: the file must load to the same data but for that one rule,
or nothing is written.

>>> text = "tags:\\n  - name: VIP  # 贵宾\\n    entity: customer\\n    rule: spend > 1\\n"
>>> print(set_rule(text, "tags/c.yaml", "VIP", "spend >= 1000 and city == '上海'"), end="")
tags:
  - name: VIP  # 贵宾
    entity: customer
    rule: spend >= 1000 and city == '上海'
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tagloop.errors import Conflict, ValidationFailed

try:  # the C loader is ~10x faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the build of PyYAML
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


def set_rule(text: str, display: str, name: str, rule: str | None) -> str:
    """``text`` (a tags file) with tag ``name``'s rule set to ``rule`` (removed if None).

    Raises `ValidationFailed` naming ``display`` when the tag is not in the file or the
    file's layout cannot be edited in place (then it is left to a person).
    """
    root = yaml.compose(text, Loader=_Loader)
    item = _find(root, name)
    if item is None:
        raise ValidationFailed(f"{display}: no tag named {name!r} in this file")
    if not isinstance(item, yaml.MappingNode) or item.flow_style:
        raise ValidationFailed(f"{display}: tag {name!r} is not a block mapping; edit it by hand")
    found = next(((k, v) for k, v in item.value if k.value == "rule"), None)
    if found is None:
        candidates = [] if rule is None else _insert(text, item, rule)
    else:
        key, value = found
        candidates = (
            [_remove(text, key, value)] if rule is None else _replace(text, key, value, rule)
        )
    if not candidates:
        return text
    old = yaml.load(text, Loader=_Loader)  # _Loader is a safe loader
    for candidate in candidates:
        if _same_but_rule(old, _load(candidate), name, rule):
            return candidate
    raise ValidationFailed(
        f"{display}: tag {name!r} could not be rewritten in place (an unusual layout); "
        "edit its rule in the file"
    )


def write_rule(path: Path, display: str, name: str, rule: str | None, expected: str) -> None:
    """Set the rule in the file at ``path`` if the file still holds ``expected`` (else
    `Conflict`: someone changed it meanwhile), atomically (a reader never sees half)."""
    current = path.read_text("utf-8")
    if current != expected:
        raise Conflict(f"{display} changed on disk since it was read; reload and try again")
    edited = set_rule(current, display, name, rule)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(edited)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _find(root: yaml.Node | None, name: str) -> yaml.Node | None:
    """The tag's mapping, in any shape the loader accepts (a list under ``tags:``, one
    tag under ``tag:``, or one tag at the top)."""
    candidates: list[yaml.Node] = []
    if isinstance(root, yaml.MappingNode):
        keys = {k.value: v for k, v in root.value}
        if isinstance(keys.get("tags"), yaml.SequenceNode):
            candidates = list(keys["tags"].value)
        elif isinstance(keys.get("tag"), yaml.MappingNode):
            candidates = [keys["tag"]]
        else:
            candidates = [root]
    for candidate in candidates:
        if isinstance(candidate, yaml.MappingNode) and any(
            k.value == "name" and isinstance(v, yaml.ScalarNode) and v.value == name
            for k, v in candidate.value
        ):
            return candidate
    return None


def _plain_ok(rule: str) -> bool:
    if not rule or "\n" in rule or rule != rule.strip():
        return False
    try:
        loaded = yaml.load(f"k: {rule}\n", Loader=_Loader)  # _Loader is a safe loader
    except yaml.YAMLError:
        return False
    return bool(loaded == {"k": rule})


def renderings(rule: str, indent: int) -> list[str]:
    """Ways to write ``rule`` as the value of a key at column ``indent``, best first: plain,
    a literal block for several lines, then double quotes (always valid)."""
    out = []
    if _plain_ok(rule):
        out.append(rule)
    lines = rule.split("\n")
    if len(lines) > 1 and lines[0] == lines[0].lstrip() and lines[0]:
        pad = " " * (indent + 2)
        out.append("|-\n" + "\n".join(pad + line if line else "" for line in lines))
    out.append(json.dumps(rule, ensure_ascii=False))
    out.append(json.dumps(rule))
    return out


def _trailing_newlines(piece: str) -> str:
    """A block scalar's marks take in the line breaks after it; they stay in the file."""
    return piece[len(piece.rstrip("\n")) :] if piece.endswith("\n") else ""


def _replace(text: str, key: yaml.Node, value: yaml.Node, rule: str) -> list[str]:
    start, end = value.start_mark.index, value.end_mark.index
    tail = _trailing_newlines(text[start:end])
    column = key.start_mark.column
    return [text[:start] + r + tail + text[end:] for r in renderings(rule, column)]


def _insert(text: str, item: yaml.MappingNode, rule: str) -> list[str]:
    """A ``rule:`` line after the tag's ``name:`` line, at the indentation of its keys."""
    name_key, name_value = next((k, v) for k, v in item.value if k.value == "name")
    line_end = text.find("\n", name_value.end_mark.index)
    at = len(text) if line_end < 0 else line_end + 1
    column = name_key.start_mark.column
    prefix = "" if line_end >= 0 else "\n"
    return [
        text[:at] + prefix + " " * column + f"rule: {r}\n" + text[at:]
        for r in renderings(rule, column)
    ]


def _remove(text: str, key: yaml.Node, value: yaml.Node) -> str:
    """Drop the ``rule:`` key with its value and the rest of its last line."""
    start = key.start_mark.index - key.start_mark.column
    end = value.end_mark.index
    if not text[start:end].endswith("\n"):
        line_end = text.find("\n", end)
        end = len(text) if line_end < 0 else line_end + 1
    return text[:start] + text[end:]


def _load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a safe loader
    except yaml.YAMLError:
        return _UNREADABLE


_UNREADABLE = object()


def _same_but_rule(old: Any, new: Any, name: str, rule: str | None) -> bool:
    if type(old) is not type(new):
        return False
    if isinstance(old, dict):
        if old.get("name") == name and "entity" in old:
            expected = {k: v for k, v in old.items() if k != "rule"}
            if rule is not None:
                expected["rule"] = rule
            return bool(new == expected)
        return old.keys() == new.keys() and all(
            _same_but_rule(old[k], new[k], name, rule) for k in old
        )
    if isinstance(old, list):
        return len(old) == len(new) and all(
            _same_but_rule(a, b, name, rule) for a, b in zip(old, new, strict=True)
        )
    return bool(old == new)
