"""What the internal actions share: which entity they act on (the trigger's, or a related
one: ``on:``), and how their effect on the store runs (`apply`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from tagloop.flows.actions.base import ActionContext, ActionFailed
from tagloop.flows.effects import Effects


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


async def apply(
    ctx: ActionContext, effect: Callable[[Effects, str], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``effect(effects, idempotency key)`` on a worker thread: effects commit to the
    store, which must not block the runs waiting on the event loop."""
    effects = ctx.effects
    assert effects is not None, "a dry run describes actions, it does not run them"
    return await anyio.to_thread.run_sync(effect, effects, ctx.idempotency_key)
