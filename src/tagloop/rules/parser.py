"""A Pratt parser for the rule language: tokens -> `tree` nodes.

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons and tests (``== in between
is contains ...``, non-associative), ``+ -``, ``* / %``, unary ``-``, postfix ``.name`` and
calls. See docs/rules.md for the language.
"""

from __future__ import annotations

from collections.abc import Callable

from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError
from tagloop.rules.tokens import T, Token, tokenize

_COMPARE = {
    "==": "==",
    "=": "==",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
_STRING_TESTS = ("contains", "startswith", "endswith", "matches")
PERIOD_WORDS = frozenset(
    {"day", "days", "week", "weeks", "month", "months", "quarter", "quarters", "year", "years"}
)


def parse(text: str) -> t.Node:
    """Parse rule text into a tree.

    >>> parse("country == '中国' and not vip")
    Logical(op='and', operands=(Binary(op='==', left=Name(parts=('country',)), \
right=Literal(value='中国')), Unary(op='not', operand=Name(parts=('vip',)))))
    """
    if not text.strip():
        raise RuleError("the rule is empty", 0, max(1, len(text)))
    parser = _Parser(tokenize(text))
    node = parser.expression()
    tok = parser.peek()
    if tok.kind is not T.EOF:
        raise RuleError(
            f"unexpected {_describe(tok)} after a complete expression", tok.start, tok.end
        )
    return node


def _describe(tok: Token) -> str:
    if tok.kind is T.EOF:
        return "end of rule"
    if tok.kind is T.STRING:
        return f"string {tok.text!r}"
    return f"'{tok.text}'"


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    # -- token helpers -----------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not T.EOF:
            self.pos += 1
        return tok

    def expect_op(self, op: str, context: str) -> Token:
        tok = self.peek()
        if not tok.is_op(op):
            raise RuleError(
                f"expected '{op}' {context}, found {_describe(tok)}", tok.start, tok.end
            )
        return self.advance()

    def expect_kw(self, word: str, context: str) -> Token:
        tok = self.peek()
        if not tok.is_kw(word):
            raise RuleError(
                f"expected '{word}' {context}, found {_describe(tok)}", tok.start, tok.end
            )
        return self.advance()

    # -- grammar -----------------------------------------------------------------------
    def expression(self) -> t.Node:
        return self.logical("or", self.logical_and)

    def logical_and(self) -> t.Node:
        return self.logical("and", self.negation)

    def logical(self, word: str, parse_operand: Callable[[], t.Node]) -> t.Node:
        first = parse_operand()
        items = [first]
        while self.peek().is_kw(word):
            self.advance()
            items.append(parse_operand())
        if len(items) == 1:
            return first
        return t.Logical(word, tuple(items), span=(items[0].span[0], items[-1].span[1]))

    def negation(self) -> t.Node:
        tok = self.peek()
        if tok.is_kw("not"):
            self.advance()
            operand = self.negation()
            return t.Unary("not", operand, span=(tok.start, operand.span[1]))
        return self.comparison()

    def comparison(self) -> t.Node:
        left = self.additive()
        tok = self.peek()
        start = left.span[0]
        node: t.Node
        if tok.kind is T.OP and tok.text in _COMPARE:
            self.advance()
            right = self.additive()
            node = t.Binary(_COMPARE[tok.text], left, right, span=(start, right.span[1]))
        elif tok.is_kw(*_STRING_TESTS):
            self.advance()
            right = self.additive()
            node = t.StringTest(tok.text, left, right, span=(start, right.span[1]))
        elif tok.is_kw("in") or (tok.is_kw("not") and self.peek(1).is_kw("in", "between")):
            negated = tok.is_kw("not")
            if negated:
                self.advance()
            if self.peek().is_kw("between"):
                return self._between(left, negated)
            self.advance()
            options = self.additive()
            node = t.In(left, options, negated, span=(start, options.span[1]))
        elif tok.is_kw("between"):
            return self._between(left, False)
        elif tok.is_kw("is"):
            self.advance()
            negated = bool(self.peek().is_kw("not") and self.advance())
            end = self.expect_kw("null", "after 'is'" + (" not" if negated else ""))
            node = t.IsNull(left, negated, span=(start, end.end))
        else:
            return left
        after = self.peek()
        if (after.kind is T.OP and after.text in _COMPARE) or after.is_kw(*_STRING_TESTS):
            raise RuleError(
                "comparisons do not chain; use 'and' (a < b and b < c)", after.start, after.end
            )
        return node

    def _between(self, left: t.Node, negated: bool) -> t.Node:
        self.expect_kw("between", "")
        low = self.additive()
        self.expect_kw("and", "in 'between .. and ..'")
        high = self.additive()
        return t.Between(left, low, high, negated, span=(left.span[0], high.span[1]))

    def additive(self) -> t.Node:
        node = self.multiplicative()
        while self.peek().is_op("+", "-"):
            op = self.advance().text
            right = self.multiplicative()
            node = t.Binary(op, node, right, span=(node.span[0], right.span[1]))
        return node

    def multiplicative(self) -> t.Node:
        node = self.unary()
        while self.peek().is_op("*", "/", "%"):
            op = self.advance().text
            right = self.unary()
            node = t.Binary(op, node, right, span=(node.span[0], right.span[1]))
        return node

    def unary(self) -> t.Node:
        tok = self.peek()
        if tok.is_op("-"):
            self.advance()
            operand = self.unary()
            if (
                isinstance(operand, t.Literal)
                and isinstance(operand.value, int | float)
                and not isinstance(operand.value, bool)
            ):
                return t.Literal(-operand.value, span=(tok.start, operand.span[1]))
            return t.Unary("-", operand, span=(tok.start, operand.span[1]))
        if tok.is_op("+"):
            self.advance()
            return self.unary()
        return self.postfix()

    def postfix(self) -> t.Node:
        node = self.primary()
        while self.peek().is_op("."):
            self.advance()
            name_tok = self.peek()
            if name_tok.kind not in (T.NAME, T.KEYWORD):
                raise RuleError(
                    f"expected a name after '.', found {_describe(name_tok)}",
                    name_tok.start,
                    name_tok.end,
                )
            self.advance()
            if self.peek().is_op("("):
                args, _, end = self.arguments()
                node = t.Method(node, name_tok.text, args, span=(node.span[0], end))
            elif isinstance(node, t.Name):
                node = t.Name((*node.parts, name_tok.text), span=(node.span[0], name_tok.end))
            else:
                raise RuleError(
                    "only names can be followed by '.field'", name_tok.start, name_tok.end
                )
        return node

    def arguments(self) -> tuple[tuple[t.Node, ...], t.Node | None, int]:
        """``( expr [where expr] , expr ... )``; only the first argument may have ``where``."""
        self.expect_op("(", "")
        args: list[t.Node] = []
        where: t.Node | None = None
        if not self.peek().is_op(")"):
            while True:
                args.append(self.argument())
                if self.peek().is_kw("where"):
                    where_tok = self.advance()
                    if len(args) != 1 or where is not None:
                        raise RuleError(
                            "'where' filters only the first argument",
                            where_tok.start,
                            where_tok.end,
                        )
                    where = self.expression()
                if not self.peek().is_op(","):
                    break
                self.advance()
        end = self.expect_op(")", "to close the argument list")
        return tuple(args), where, end.end

    def argument(self) -> t.Node:
        """An expression, or a period span such as ``3 months`` (only in arguments)."""
        first, second = self.peek(), self.peek(1)
        if (
            first.kind is T.NUMBER
            and isinstance(first.value, int)
            and second.kind is T.NAME
            and second.text.lower() in PERIOD_WORDS
        ):
            self.advance()
            self.advance()
            return t.PeriodSpan(first.value, second.text.lower(), span=(first.start, second.end))
        return self.expression()

    def primary(self) -> t.Node:
        tok = self.peek()
        span = (tok.start, tok.end)
        if tok.kind is T.NUMBER:
            self.advance()
            return t.Literal(tok.value, span=span)
        if tok.kind is T.STRING:
            self.advance()
            return t.Literal(tok.text, span=span)
        if tok.kind is T.DURATION:
            self.advance()
            return t.Duration(int(tok.value), span=span)  # type: ignore[call-overload]
        if tok.is_kw("true", "false", "null"):
            self.advance()
            return t.Literal({"true": True, "false": False, "null": None}[tok.text], span=span)
        if tok.is_kw("case"):
            return self.case()
        if tok.is_op("("):
            self.advance()
            inner = self.expression()
            self.expect_op(")", "to close '('")
            return inner
        if tok.is_op("["):
            return self.list_literal()
        if tok.kind is T.NAME:
            self.advance()
            if self.peek().is_op("("):
                args, where, end = self.arguments()
                return t.Call(tok.text, args, where, name_span=span, span=(tok.start, end))
            return t.Name((tok.text,), span=span)
        if tok.kind is T.EOF:
            raise RuleError("the rule ends where a value was expected", tok.start, tok.end)
        if tok.kind is T.KEYWORD:
            raise RuleError(
                f"'{tok.text}' is a keyword; write `{tok.text}` to use it as a name",
                tok.start,
                tok.end,
            )
        raise RuleError(f"expected a value, found {_describe(tok)}", tok.start, tok.end)

    def list_literal(self) -> t.Node:
        start = self.advance().start
        items: list[t.Node] = []
        if not self.peek().is_op("]"):
            while True:
                items.append(self.expression())
                if not self.peek().is_op(","):
                    break
                self.advance()
        end = self.expect_op("]", "to close the list")
        return t.ListLit(tuple(items), span=(start, end.end))

    def case(self) -> t.Node:
        start = self.advance().start
        whens: list[tuple[t.Node, t.Node]] = []
        while self.peek().is_kw("when"):
            self.advance()
            cond = self.expression()
            self.expect_kw("then", "after the 'when' condition")
            whens.append((cond, self.expression()))
        if not whens:
            tok = self.peek()
            raise RuleError("'case' needs at least one 'when .. then ..'", tok.start, tok.end)
        default = None
        if self.peek().is_kw("else"):
            self.advance()
            default = self.expression()
        end = self.expect_kw("end", "to close 'case'")
        return t.Case(tuple(whens), default, span=(start, end.end))
