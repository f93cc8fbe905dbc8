"""Which entity an internal action acts on: the trigger's, or a related one (``on:``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tagloop.flows.actions.base import ActionFailed


def target(scope: Mapping[str, Any], on: str | None, action: str) -> tuple[str, str]:
    """``(entity type, entity id)`` of the run's entity, or of the related entity ``on``.

    >>> scope = {"entity": {"type": "order", "id": "O-1"}, "customer": {"type": "customer",
    ...     "id": "C-9"}}
    >>> target(scope, None, "set_priority"), target(scope, "customer", "add_tag")
    (('order', 'O-1'), ('customer', 'C-9'))
    """
    entity = scope.get("entity") if on is None else scope.get(on)
    if not isinstance(entity, Mapping) or not entity.get("id"):
        raise ActionFailed(
            f"{action}: the run has no {on or 'entity'} to act on"
            + (f" (the triggering event names no related {on})" if on else "")
        )
    return str(entity.get("type") or on), str(entity["id"])
