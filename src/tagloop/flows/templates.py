"""Jinja2 templates in flow action arguments: ``"您好，{{ customer.name }}"``.

Templates run in Jinja2's immutable sandbox (no attribute tricks reaching Python
internals, no ``.append()`` changing the run's scope), with `StrictUndefined` (a misspelt
name is an error, not an empty string) and without autoescaping (the output is JSON, chat
markdown or mail text, never HTML).

The scope a template sees is the run's: ``event`` (``type``, ``time``, ``id``,
``properties``...), ``entity`` (``id``, ``type``, its attributes, ``tags``), the entity
type's name as an alias of ``entity`` (``customer``), the related entities, and ``run``
(``id``, ``flow``).

Every failure is an `ActionFailed` naming the template and what is wrong with it:

>>> render("{{ custmer.name }}", {"customer": {"name": "张三"}})
Traceback (most recent call last):
...
tagloop.flows.actions.base.ActionFailed: template '{{ custmer.name }}': 'custmer' is undefined
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tagloop.flows.actions.base import ActionFailed

__all__ = ["check", "render", "render_value"]

_MARKERS = ("{{", "{%")  # as `tagloop.flows.definitions.has_template` finds templates
_SHOWN = 60  # characters of a template quoted in an error message
_FILENAME = "<template>"
_KEYS = 12  # keys of a mapping listed when one is missing


class _Undefined(StrictUndefined):
    """StrictUndefined whose message lists the keys a mapping does have, so that a
    misspelt attribute (``customer.nmae``) shows the right spelling next to it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        message: str = super()._undefined_message
        obj = self._undefined_obj
        if isinstance(obj, Mapping) and obj and self._undefined_name is not None:
            keys = sorted(str(key) for key in obj)
            shown = ", ".join(keys[:_KEYS]) + (", ..." if len(keys) > _KEYS else "")
            message += f" (it has {shown})"
        return message


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, reading ``a.b`` of a mapping as its key ``b`` first.

    Jinja tries the attribute first, so ``event.properties.items`` would be the dict's
    ``items`` method rather than the event's ``items`` property; scope data are JSON, where
    keys named ``items``, ``values`` or ``keys`` are common and methods are never meant.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


_env = _Environment(
    undefined=_Undefined,
    autoescape=False,
    # A message ending in a newline keeps it: what the flow author wrote is what is sent.
    keep_trailing_newline=True,
)


def render(text: str, scope: Mapping[str, Any]) -> str:
    """The text of ``text`` rendered against ``scope``.

    >>> scope = {"customer": {"name": "张三", "tags": ["VIP"]}, "event": {"type": "order"}}
    >>> render("您好，{{ customer.name }}！您的 {{ event.type }} 已收到。", scope)
    '您好，张三！您的 order 已收到。'
    >>> render("{% for t in customer.tags %}[{{ t }}]{% endfor %}", scope)
    '[VIP]'
    >>> render("{{ customer.name }", scope)
    Traceback (most recent call last):
    ...
    tagloop.flows.actions.base.ActionFailed: template '{{ customer.name }': line 1: unexpected '}'
    """
    template = _template(text)
    try:
        return template.render(dict(scope))
    except Exception as exc:
        raise _failure(text, exc) from None


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with every string in it rendered, through dicts and lists at any depth.

    A string that is one ``{{ expression }}`` and nothing else gives the expression's own
    value (a number stays a number, a dict a dict), so a webhook body can carry typed
    fields; any other string gives text. Strings without template markers, numbers,
    booleans and None come back as they are; dict keys are not rendered.

    >>> scope = {"event": {"properties": {"amount": 12.5, "items": ["茶", "书"]}}}
    >>> render_value({"amount": "{{ event.properties.amount }}", "n": 3}, scope)
    {'amount': 12.5, 'n': 3}
    >>> items = "{{ event.properties.items }}"
    >>> render_value([items, "共 {{ event.properties.items | length }} 件"], scope)
    [['茶', '书'], '共 2 件']
    >>> render_value("no template here", scope)
    'no template here'
    """
    if isinstance(value, str):
        return _render_string(value, scope)
    if isinstance(value, Mapping):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(render_value(item, scope) for item in value)
    return value


def check(text: str) -> None:
    """Raise `ActionFailed` when ``text`` is not a valid template (syntax only: names are
    not looked up, nothing is rendered), for errors at load time rather than at run time.

    >>> check("{{ customer.name }} 您好")
    >>> check("第一行\\n{{ name }")
    Traceback (most recent call last):
    ...
    tagloop.flows.actions.base.ActionFailed: template '第一行\\n{{ name }': line 2: unexpected '}'
    """
    _template(text)


def _render_string(text: str, scope: Mapping[str, Any]) -> Any:
    if not _is_template(text):
        # The fast path is also the guarantee that plain text (JSON, markdown) is never
        # touched by Jinja's whitespace and newline handling.
        return text
    expression = _expression(text.strip())
    if expression is None:
        return render(text, scope)
    try:
        result = expression(dict(scope))
        if isinstance(result, Undefined):
            # An expression's result is not printed, so StrictUndefined has not raised yet.
            str(result)
    except Exception as exc:
        raise _failure(text, exc) from None
    if isinstance(result, range | Iterator):
        # ``map``, ``select`` and ``range`` give lazy iterators; a step's arguments must be
        # plain data for the trace (and a retry must see the same values).
        return list(result)
    return result


def _is_template(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


@lru_cache(maxsize=2048)
def _template(text: str) -> Template:
    # Cached: a flow renders the same argument templates for every event it runs on.
    try:
        return _env.from_string(text)
    except TemplateSyntaxError as exc:
        raise _failure(text, exc) from None


@lru_cache(maxsize=2048)
def _expression(text: str) -> TemplateExpression | None:
    """The compiled expression when ``text`` is exactly one ``{{ ... }}``, else None."""
    try:
        tree = _env.parse(text)
    except TemplateSyntaxError as exc:
        raise _failure(text, exc) from None
    match tree.body:
        case [nodes.Output(nodes=[expr])] if not isinstance(expr, nodes.TemplateData):
            # What `Environment.compile_expression` builds, from the parsed node itself:
            # re-lexing a slice of the text would misread ``{{- x -}}``.
            body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
            template = _env.from_string(nodes.Template(body, lineno=1))
            return TemplateExpression(template, undefined_to_none=False)
    return None


def _failure(text: str, exc: Exception) -> ActionFailed:
    where = f"template {_shorten(text)!r}: "
    if isinstance(exc, TemplateSyntaxError):
        return ActionFailed(f"{where}line {exc.lineno}: {exc.message}")
    line = _line(exc) if "\n" in text else None
    at = f"line {line}: " if line is not None else ""
    if isinstance(exc, UndefinedError | SecurityError):
        return ActionFailed(f"{where}{at}{exc.message}")
    if isinstance(exc, TemplateError):
        return ActionFailed(f"{where}{at}{exc.message or type(exc).__name__}")
    # A template's own runtime error (``1 / 0``, ``'a' + 1``): the flow author's to fix.
    return ActionFailed(f"{where}{at}{type(exc).__name__}: {exc}")


def _line(exc: BaseException) -> int | None:
    """The template line a render error came from: Jinja rewrites the traceback so that
    its frames in the template carry the template's file name and line numbers."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
