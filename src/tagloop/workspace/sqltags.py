"""Tags written as SQL: the ``CREATE RULE`` statements of ``tags/*.sql`` files.

Each statement becomes a rule tag (see "SQL rules" in docs/rules.md): the entity type is the
table after FROM (``feedbacks`` -> ``feedback``), the rule is the WHERE condition, the action
is the ``ESCALATE TO`` clause, and ``-- category:``, ``-- owner:``, ``-- description:``
comment lines right above the statement fill in those fields. The parsed tree goes to
`compile_tags` as it is, so every later error still points into the ``.sql`` file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tagloop.errors import Problem
from tagloop.names import caret_line
from tagloop.rules.errors import RuleError
from tagloop.rules.printer import to_text
from tagloop.rules.sqlrule import SqlRule, parse_sql_rules, resolve_entity
from tagloop.workspace.models import TagSpec
from tagloop.workspace.tags import Report, TagSource
from tagloop.workspace.yamlfile import PathKey, Pos, Positions

_META = re.compile(r"--\s*(category|owner|description)\s*:\s*(.*?)\s*", re.I)


@dataclass
class SqlPositions(Positions):
    """Where each part of the rules of one ``.sql`` file is.

    The trees of SQL rules keep offsets into the whole file, not into the printed rule
    text `TagSpec.rule` holds, so `locate_in_scalar` reads its offset as a file offset.
    """

    text: str = ""

    def offset(self, offset: int) -> tuple[int, int]:
        """1-based line and column of character ``offset`` of the file."""
        line_start = self.text.rfind("\n", 0, offset) + 1
        return self.text.count("\n", 0, offset) + 1, offset - line_start + 1

    def at_offset(self, path: PathKey, offset: int) -> None:
        line, col = self.offset(offset)
        self.at[path] = self.keys[path] = Pos(line, col)

    def locate_in_scalar(self, path: PathKey, offset: int, text: str) -> tuple[str, str]:
        line, col = self.offset(offset)
        return f"{self.file}:{line}:{col}", self.lines[line - 1]

    def problem(self, exc: RuleError) -> Problem:
        """``exc`` as a ``file:line:col`` problem with the file line and a caret under it.

        >>> text = "-- 规则\\nCREATE RULE"
        >>> print(SqlPositions("a.sql", lines=text.split("\\n"), text=text).problem(
        ...     RuleError("expected AS", 13, 17)))
        a.sql:2:8: expected AS
        CREATE RULE
               ^^^^
        """
        where, line = self.locate_in_scalar((), exc.start, "")
        col = int(where.rsplit(":", 1)[1])
        return Problem(where, exc.message, caret_line(line, col, exc.end - exc.start))


def read_sql_tags(
    root: Path,
    entity_types: Collection[str],
    dictionary_complete: bool,
    digest: Callable[[bytes], None],
    report: Report,
) -> list[TagSource]:
    """The tags of every ``tags/**/*.sql`` file of the workspace at ``root``; problems go to
    ``report`` and ``digest`` sees each file (for the workspace revision).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "tags").mkdir()
    >>> _ = (root / "tags" / "x.sql").write_text(
    ...     "CREATE RULE x AS SELECT * FROM feedbaks WHERE y", encoding="utf-8")
    >>> problems = []
    >>> read_sql_tags(root, ["feedback"], True, lambda data: None, problems.append)
    []
    >>> print(problems[0])
    tags/x.sql:1:32: unknown entity type 'feedbaks' (did you mean 'feedback'?)
    CREATE RULE x AS SELECT * FROM feedbaks WHERE y
                                   ^^^^^^^^
    """
    folder = root / "tags"
    sources: list[TagSource] = []
    for path in sorted(folder.rglob("*.sql")) if folder.is_dir() else []:
        display = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
            digest(display.encode() + b"\0" + data + b"\0")
            text = data.decode("utf-8")
        except OSError as exc:
            report(Problem(display, f"cannot read: {exc.strerror}"))
            continue
        except UnicodeDecodeError as exc:
            report(Problem(display, f"not UTF-8 text (byte {exc.start})"))
            continue
        sources += sql_tag_sources(text, display, entity_types, report, dictionary_complete)
    return sources


def sql_tag_sources(
    text: str,
    file: str,
    entity_types: Collection[str],
    report: Report,
    dictionary_complete: bool = True,
) -> list[TagSource]:
    """The tags of one ``.sql`` file's text, ready for `compile_tags`.

    A file that does not parse gives no tags at all; a bad statement in a file that does is
    reported and left out, and the rest are still checked.

    >>> problems = []
    >>> (tag,) = sql_tag_sources(
    ...     "-- owner: 品质部\\nCREATE RULE hot AS SELECT * FROM feedbacks WHERE score > 8;",
    ...     "tags/hot.sql", ["feedback"], problems.append)
    >>> tag.spec.entity, tag.spec.rule, tag.spec.owner, tag.positions.locate(tag.path)
    ('feedback', 'score > 8', '品质部', 'tags/hot.sql:2:1')
    """
    positions = SqlPositions(file, lines=text.split("\n"), text=text)
    try:
        rules = parse_sql_rules(text)
    except RuleError as exc:
        report(positions.problem(exc))
        return []
    sources = []
    for index, rule in enumerate(rules):
        path: PathKey = (index,)
        try:
            entity = resolve_entity(rule, entity_types)
        except RuleError as exc:
            # With a broken entity file the dictionary is incomplete and the real problem
            # has been reported already; "unknown entity type" would be noise.
            if dictionary_complete:
                report(positions.problem(exc))
            continue
        for part, offset in (
            ((), rule.span[0]),
            (("name",), rule.name_span[0]),
            (("entity",), rule.table_span[0]),
            (("rule",), rule.where.span[0]),
        ):
            positions.at_offset((*path, *part), offset)
        fields = _metadata(text, rule, positions, path)
        data: dict[str, Any] = {"name": rule.name, "entity": entity, "rule": to_text(rule.where)}
        try:
            spec = TagSpec.model_validate({**data, "action": rule.action, **fields})
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else "name"
                message = str(error["msg"]).removeprefix("Value error, ")
                report(Problem(positions.locate((*path, key)), f"{key}: {message}"))
            continue
        sources.append(TagSource(spec, positions, path, {"rule": rule.where}))
    return sources


def _metadata(text: str, rule: SqlRule, positions: SqlPositions, path: PathKey) -> dict[str, str]:
    """``-- key: value`` lines directly above the statement (the nearest line wins)."""
    start = rule.span[0]
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip():
        return {}  # CREATE RULE is not first on its line: the lines above are not its own
    fields: dict[str, str] = {}
    lines = text[:line_start].split("\n")[:-1]
    for number in range(len(lines), 0, -1):
        line = lines[number - 1].strip()
        if not line.startswith("--"):
            break
        match = _META.fullmatch(line)
        if match and match.group(1).lower() not in fields:
            key = match.group(1).lower()
            fields[key] = match.group(2)
            col = lines[number - 1].find(match.group(2)) + 1 if match.group(2) else 1
            positions.at[(*path, key)] = positions.keys[(*path, key)] = Pos(number, col)
    return fields
