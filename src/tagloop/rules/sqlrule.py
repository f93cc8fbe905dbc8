"""SQL-flavoured rules for analysts: ``CREATE RULE .. AS SELECT * FROM t WHERE ..`` -> rule tree.

A file holds ``CREATE RULE <name> AS SELECT * FROM <table> WHERE <condition> [ESCALATE TO
<team> [WITH PRIORITY <n>]]`` statements separated by ``;``. sqlglot knows neither ``CREATE
RULE`` nor ``ESCALATE TO``, so a small scanner (aware of quotes and comments) splits those
off and sqlglot (postgres dialect) parses the ``SELECT``. The WHERE condition becomes the
`tree` nodes the rule parser makes, with spans into the original text, so the binder's
errors point into the SQL file. docs/rules.md ("SQL rules") has the translation table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from tagloop.names import suggest
from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError
from tagloop.rules.sqlwhere import WhereQuery

Span = tuple[int, int]


@dataclass(frozen=True)
class SqlRule:
    """One ``CREATE RULE`` statement; every span is an offset range into the parsed text."""

    name: str
    table: str  # as written after FROM: `resolve_entity` maps it to an entity type
    where: t.Node
    action: dict[str, Any] | None  # {"escalate_to": team, "priority": n} or None
    span: Span  # from CREATE to the end of the statement, without the ';'
    name_span: Span
    table_span: Span


def parse_sql_rules(text: str) -> list[SqlRule]:
    """Parse every ``CREATE RULE`` statement of ``text``; raises `RuleError` at the fault.

    >>> from tagloop.rules.printer import to_text
    >>> (rule,) = parse_sql_rules('''CREATE RULE hot AS SELECT * FROM feedbacks
    ...     WHERE score > 8 AND line LIKE '高端%' ESCALATE TO qa WITH PRIORITY 1;''')
    >>> rule.name, rule.table, rule.action
    ('hot', 'feedbacks', {'escalate_to': 'qa', 'priority': 1})
    >>> to_text(rule.where)
    "score > 8 and line startswith '高端'"
    """
    lexemes = _lex(text)
    statements: list[list[_Lex]] = [[]]
    for lex in lexemes:
        if lex.kind == "punct" and lex.text == ";":
            statements.append([])
        else:
            statements[-1].append(lex)
    return [_statement(text, s) for s in statements if s]


def parse_sql_condition(text: str) -> t.Node:
    """Translate a bare SQL condition (what follows WHERE); spans are offsets into ``text``.

    >>> from tagloop.rules.printer import to_text
    >>> to_text(parse_sql_condition("a <> 1 AND b NOT IN ('x', 'y') OR c IS NULL"))
    "a != 1 and b not in ['x', 'y'] or c is null"
    """
    if not text.strip():
        raise RuleError("the condition is empty", 0, max(1, len(text)))
    _lex(text)  # unterminated strings and comments, reported as the scanner words them
    prefix = "SELECT * FROM t WHERE "
    query = WhereQuery(prefix + text, -len(prefix), qualifiers=())
    where = query.select()[1]
    return query.node(where)


def resolve_entity(rule: SqlRule, entity_types: Collection[str]) -> str:
    """The entity type ``FROM <table>`` names: the exact name or a plural form of it.

    >>> rule = parse_sql_rules("CREATE RULE r AS SELECT * FROM batches WHERE x")[0]
    >>> resolve_entity(rule, ["batch", "category"])
    'batch'
    """
    table = rule.table
    forms = [table, table.lower()]
    for word in (table, table.lower()):
        if word.endswith("ies"):
            forms.append(word[:-3] + "y")
        forms += [word[:-2], word[:-1]] if word.endswith("es") else []
        forms += [word[:-1]] if word.endswith("s") else []
    found = next((form for form in forms if form in entity_types), None)
    if found is not None:
        return found
    hint = next((h for h in (suggest(f, entity_types) for f in dict.fromkeys(forms)) if h), "")
    raise RuleError(f"unknown entity type {table!r}{hint}", *rule.table_span)


# -- the scanner: statements, CREATE RULE and ESCALATE TO --------------------------------
@dataclass(frozen=True, slots=True)
class _Lex:
    kind: str  # word (names, keywords, numbers), string, name ("quoted"), punct
    text: str
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d]\w*|\d+(?:\.\d+)?")
_DOLLAR = re.compile(r"\$(?:[^\W\d]\w*)?\$")  # PostgreSQL's $tag$ ... $tag$ strings


def _lex(text: str) -> list[_Lex]:
    """The lexemes of ``text`` outside comments; the splitting must see quotes as sqlglot
    does, or a ';' or 'ESCALATE' inside a string would cut a statement in two."""
    out: list[_Lex] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            continue
        if text.startswith("--", pos):
            newline = text.find("\n", pos)
            pos = n if newline < 0 else newline
            continue
        if text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            if close < 0:
                raise RuleError("unterminated /* comment", pos, pos + 2)
            pos = close + 2
            continue
        after_word = pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] == "_")
        if text[pos] in "'\"":
            # E'..' strings take backslash escapes, so E'it\'s' is one string.
            escapes = bool(out) and out[-1].end == pos and out[-1].text in ("E", "e")
            lex = _quoted(text, out.pop().start if escapes else pos, pos, escapes)
        elif (dollar := _DOLLAR.match(text, pos)) and not after_word:
            close = text.find(dollar.group(), dollar.end())
            if close < 0:
                raise RuleError("unterminated $$ string", pos, dollar.end())
            lex = _Lex("string", text[dollar.end() : close], pos, close + len(dollar.group()))
        elif word := _WORD.match(text, pos):
            lex = _Lex("word", word.group(), pos, word.end())
        else:
            lex = _Lex("punct", text[pos], pos, pos + 1)
        out.append(lex)
        pos = lex.end
    return out


def _quoted(text: str, start: int, pos: int, escapes: bool) -> _Lex:
    quote, chars, i = text[pos], [], pos + 1
    while i < len(text):
        ch = text[i]
        if escapes and ch == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
        elif ch == quote and text.startswith(quote, i + 1):  # '' inside '..' is one quote
            chars.append(quote)
            i += 2
        elif ch == quote:
            return _Lex("string" if quote == "'" else "name", "".join(chars), start, i + 1)
        else:
            chars.append(ch)
            i += 1
    line_end = text.find("\n", pos)
    what = "string" if quote == "'" else "quoted name"
    raise RuleError(f"unterminated {what}", pos, len(text) if line_end < 0 else line_end)


def _statement(text: str, lexes: list[_Lex]) -> SqlRule:
    pos = 0

    def take(what: str, test: Callable[[_Lex], bool]) -> _Lex:
        nonlocal pos
        if pos >= len(lexes):
            end = lexes[-1].end
            raise RuleError(f"expected {what}, found the end of the statement", end, end + 1)
        lex = lexes[pos]
        if not test(lex):
            raise RuleError(f"expected {what}, found {_describe(lex)}", lex.start, lex.end)
        pos += 1
        return lex

    def is_name(lex: _Lex) -> bool:
        return lex.kind == "name" or (lex.kind == "word" and not lex.is_word("AS"))

    create = take("CREATE RULE <name> AS SELECT ...", lambda x: x.is_word("CREATE"))
    take("RULE after CREATE", lambda x: x.is_word("RULE"))
    name = take("the rule's name after CREATE RULE", is_name)
    take("AS after the rule's name", lambda x: x.is_word("AS"))
    query_from, depth = pos, 0
    while pos < len(lexes):
        lex = lexes[pos]
        depth += {"(": 1, ")": -1}.get(lex.text, 0) if lex.kind == "punct" else 0
        nxt = lexes[pos + 1] if pos + 1 < len(lexes) else None
        # A column may be called escalate: the clause is ESCALATE followed by a word (TO
        # even inside an unclosed parenthesis, so that the missing ')' is what is reported).
        to = nxt is not None and (nxt.is_word("TO") or (depth == 0 and nxt.kind != "punct"))
        if lex.is_word("ESCALATE") and to:
            break
        pos += 1
    if pos == query_from:
        take("SELECT * FROM <table> WHERE <condition> after AS", lambda x: False)
    first, last = lexes[query_from], lexes[pos - 1]
    query = WhereQuery(text[first.start : last.end], first.start, qualifiers=None)
    table, where = query.select()
    action: dict[str, Any] | None = None
    if pos < len(lexes):
        pos += 1
        take("TO after ESCALATE", lambda x: x.is_word("TO"))
        target = take("who to escalate to after ESCALATE TO", lambda x: x.kind != "punct")
        action = {"escalate_to": target.text}
        if pos < len(lexes) and lexes[pos].is_word("WITH"):
            pos += 1
            take("PRIORITY after WITH", lambda x: x.is_word("PRIORITY"))
            priority = take("a whole number after PRIORITY", lambda x: x.text.isdigit())
            action["priority"] = int(priority.text)
        if pos < len(lexes):
            take("';' after the ESCALATE clause", lambda x: False)
    identifier = table.this
    return SqlRule(
        name=name.text,
        table=table.name,
        where=query.node(where),
        action=action,
        span=(create.start, lexes[-1].end),
        name_span=(name.start, name.end),
        table_span=query.span(identifier if isinstance(identifier, exp.Expr) else table),
    )


def _describe(lex: _Lex) -> str:
    return f"string {lex.text!r}" if lex.kind == "string" else repr(lex.text)
