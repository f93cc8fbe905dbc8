"""Every flow action by name: built-in and from plugins (``tagloop_flow_actions``)."""

from __future__ import annotations

from functools import cache

from tagloop.errors import TagloopError
from tagloop.flows.actions.base import Action


@cache
def actions() -> dict[str, type[Action]]:
    """Action classes by name; two plugins giving one name is an error, not a silent pick.

    >>> sorted(actions())[:4]
    ['add_tag', 'create_work_order', 'emit_event', 'notify']
    """
    from tagloop.plugins import manager

    found: dict[str, type[Action]] = {}
    for group in manager().hook.tagloop_flow_actions():
        for action in group:
            other = found.get(action.name)
            if other is not None and other is not action:
                raise TagloopError(
                    f"two plugins define the flow action {action.name!r}: "
                    f"{other.__module__}.{other.__qualname__} and "
                    f"{action.__module__}.{action.__qualname__}"
                )
            found[action.name] = action
    return found
