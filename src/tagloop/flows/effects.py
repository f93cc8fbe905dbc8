"""The store-side effects of the internal actions, as an interface the runner provides.

Actions never touch the store themselves: `ActionContext.effects` does it (on the writer's
thread, in its own transaction), and is None in a dry run. Every effect is idempotent by
the attempt's `ActionContext.idempotency_key`: an attribute change or an emitted event is an
event with an id derived from it, a work order has it as a unique key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Effects(Protocol):
    def set_attributes(
        self, key: str, entity_type: str, entity_id: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Set attributes on an entity (an event of type ``flow_update``); returns what
        changed, ``{name: [before, after]}``."""
        ...

    def set_tag(
        self, key: str, entity_type: str, entity_id: str, tag: str, value: Any, held: bool
    ) -> dict[str, Any]:
        """Give (``held``) or take away a manual tag."""
        ...

    def emit_event(self, key: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Store an event (which may trigger other flows); returns its id."""
        ...

    def create_work_order(self, key: str, order: Mapping[str, Any]) -> dict[str, Any]:
        """Create a work order (once per key); returns its id and whether it is new."""
        ...
