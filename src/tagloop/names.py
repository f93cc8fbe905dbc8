"""Name rules shared by the dictionary, tags and the rule language, and "did you mean"."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

# Unicode letters, digits and underscore; must not start with a digit. Chinese names qualify.
IDENT = re.compile(r"^[^\W\d]\w*$")


def is_identifier(name: str) -> bool:
    """True for names usable bare in rules (``customer``, ``客户等级``).

    >>> is_identifier("客户等级"), is_identifier("order_line"), is_identifier("2x")
    (True, True, False)
    """
    return bool(IDENT.match(name))


def check_label(name: str, what: str = "name") -> str:
    """Validate a free-form label (tag names, field names): visible text, no control chars.

    >>> check_label("高价值客户")
    '高价值客户'
    """
    if not name or name != name.strip():
        raise ValueError(f"{what} must be non-empty without leading or trailing spaces")
    if len(name) > 200:
        raise ValueError(f"{what} is longer than 200 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ValueError(f"{what} contains control characters")
    if "/" in name:
        raise ValueError(f"{what} must not contain '/'")
    return name


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A `` (did you mean 'x'?)`` suffix for the closest candidate, or an empty string.

    >>> suggest("custmer", ["customer", "order"])
    " (did you mean 'customer'?)"
    >>> suggest("zzz", ["customer"])
    ''
    """
    pool = list(candidates)
    match = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in pool}
        match = [lowered[name.lower()]] if name.lower() in lowered else []
    return f" (did you mean {match[0]!r}?)" if match else ""


def display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two, so carets line up under them.

    >>> display_width("客户 ok")
    7
    """
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def caret_line(source_line: str, col: int, width: int = 1) -> str:
    """``source_line`` and a ``^`` marker under 1-based column ``col`` (``width`` chars wide).

    >>> print(caret_line("rule: 金额 > x", 7, 2))
    rule: 金额 > x
          ^^^^
    """
    start = max(col - 1, 0)
    marked = source_line[start : start + max(width, 1)] or " "
    return f"{source_line}\n{' ' * display_width(source_line[:start])}{'^' * display_width(marked)}"
