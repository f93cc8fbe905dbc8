"""The rule language tokenizer: text -> tokens with character offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from tagloop.rules.errors import RuleError
from tagloop.timeutil import parse_duration


class T(Enum):
    NUMBER = auto()
    STRING = auto()
    DURATION = auto()
    NAME = auto()  # identifiers, including back-quoted ones
    KEYWORD = auto()
    OP = auto()
    EOF = auto()


KEYWORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "true",
        "false",
        "contains",
        "startswith",
        "endswith",
        "matches",
        "between",
        "where",
        "case",
        "when",
        "then",
        "else",
        "end",
    }
)

# Longest operators first so that "<=" is not read as "<" then "=".
OPERATORS = (
    "==",
    "!=",
    "<>",
    "<=",
    ">=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "=",
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: T
    text: str  # for STRING/NAME the decoded value; for KEYWORD the lower-case word
    start: int
    end: int
    value: object = None  # numbers as int/float, durations in microseconds

    def is_op(self, *ops: str) -> bool:
        return self.kind is T.OP and self.text in ops

    def is_kw(self, *words: str) -> bool:
        return self.kind is T.KEYWORD and self.text in words


_NUMBER = re.compile(r"[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?")
_UNIT = re.compile(r"(ms|s|m|h|d|w)(?![\w])")
_NAME = re.compile(r"[^\W\d]\w*")
_SPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[Token]:
    """Split rule text into tokens.

    >>> [t.text for t in tokenize("金额 >= 1_000 and `Customer ID` in ['a', \\"b\\"]")]
    ['金额', '>=', '1_000', 'and', 'Customer ID', 'in', '[', 'a', ',', 'b', ']', '']
    >>> tokenize("30d")[0].value
    2592000000000
    """
    tokens: list[Token] = []
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            continue
        if ch == "#":  # comment to end of line
            newline = text.find("\n", pos)
            pos = n if newline < 0 else newline
            continue
        if "0" <= ch <= "9":
            tokens.append(_number(text, pos))
        elif ch in "'\"":
            tokens.append(_string(text, pos))
        elif ch == "`":
            close = text.find("`", pos + 1)
            if close < 0:
                raise RuleError("unterminated back-quoted name", pos, n)
            if close == pos + 1:
                raise RuleError("empty back-quoted name", pos, close + 1)
            tokens.append(Token(T.NAME, text[pos + 1 : close], pos, close + 1))
        elif match := _NAME.match(text, pos):
            word = match.group()
            kind = T.KEYWORD if word.lower() in KEYWORDS else T.NAME
            tokens.append(
                Token(kind, word.lower() if kind is T.KEYWORD else word, pos, match.end())
            )
        else:
            op = next((o for o in OPERATORS if text.startswith(o, pos)), None)
            if op is None:
                raise RuleError(f"unexpected character {ch!r}", pos)
            tokens.append(Token(T.OP, op, pos, pos + len(op)))
        pos = tokens[-1].end
    tokens.append(Token(T.EOF, "", n, n))
    return tokens


def _number(text: str, pos: int) -> Token:
    match = _NUMBER.match(text, pos)
    assert match is not None
    raw = match.group()
    end = match.end()
    if raw.endswith("_") or "__" in raw:
        raise RuleError(f"malformed number {raw!r}", pos, end)
    clean = raw.replace("_", "")
    unit = _UNIT.match(text, end)
    if unit and not any(c in clean for c in ".eE"):
        return Token(
            T.DURATION,
            text[pos : unit.end()],
            pos,
            unit.end(),
            parse_duration(clean + unit.group()),
        )
    if end < len(text) and (text[end].isalpha() or text[end] == "_"):
        word = _NAME.match(text, end)
        stop = word.end() if word else end + 1
        raise RuleError(
            f"{text[pos:stop]!r} is neither a number nor a duration (units: ms s m h d w)",
            pos,
            stop,
        )
    value: int | float = float(clean) if any(c in clean for c in ".eE") else int(clean)
    return Token(T.NUMBER, raw, pos, end, value)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _string(text: str, pos: int) -> Token:
    quote = text[pos]
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return Token(T.STRING, "".join(out), pos, i + 1)
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise RuleError(f"unknown escape '\\{nxt}' in string", i, i + 2)
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        if ch == "\n":
            break
        out.append(ch)
        i += 1
    raise RuleError("unterminated string", pos, i)
