"""The file formats of flows (``flows/*.yaml``) and action aliases (``actions/*.yaml``).

A flow file holds one flow under ``flow:`` (as the reference platform writes them), one
flow at its top level, or a list under ``flows:``. Steps (``actions:``, or ``steps:``) are
kept as written here and checked by `tagloop.flows.definitions`, which knows the actions
and the rule language: a step is a call (``"set_priority(HIGH)"``), a one-key mapping
(``{notify: {channel: dingtalk, message: ...}}``), or a control step (``if``, ``wait``,
``wait_until``, ``parallel``).

>>> spec = FlowSpec.model_validate({"name": "VIP_Order_Processing",
...     "trigger": "order_created", "conditions": "customer.tags.contains('VIP')",
...     "actions": ["skip_credit_check", "set_priority(HIGH)"]})
>>> spec.trigger, spec.conditions, spec.body_key
('order_created', ["customer.tags.contains('VIP')"], 'actions')
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from tagloop.names import check_label
from tagloop.timeutil import parse_duration
from tagloop.workspace.models import Strict


def _duration(value: str, what: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


class RetrySpec(Strict):
    """How a failing action is retried before its run is given up as ``failed``."""

    attempts: int = Field(8, ge=1, le=1000)
    """Attempts of one action at most (the first included)."""
    initial: str = "1s"
    """The first wait; it doubles with each failure, plus jitter."""
    max: str = "10m"
    """The longest wait between two attempts (a ``Retry-After`` is honoured up to it)."""
    give_up_after: str = "1d"
    """A run still failing this long after the action's first attempt fails."""

    @field_validator("initial", "max", "give_up_after")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _duration(value, "a duration")


class DedupeSpec(Strict):
    """At most one run per ``key`` within ``window`` (later ones are recorded ``skipped``)."""

    key: str = "{{ entity.type }}:{{ entity.id }}"
    """A template over the run's scope (default: one run per entity)."""
    window: str = "1h"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return _duration(value, "window")


class RateSpec(Strict):
    """At most ``limit`` runs started per ``per`` (the others wait their turn)."""

    limit: int = Field(ge=1)
    per: str = "1m"

    @field_validator("per")
    @classmethod
    def _per(cls, value: str) -> str:
        return _duration(value, "per")


class FlowSpec(Strict):
    """One flow: a trigger, conditions that must all hold, and the steps to run."""

    name: str
    description: str = ""
    owner: str = ""
    enabled: bool = True
    trigger: str | dict[str, Any]
    """An event type (``order_created``), or one of ``{event: T}``, ``{tag_added: VIP}``,
    ``{tag_removed: VIP}``, ``{tag_changed: T}``, ``{every: 1h, entity: device, where:
    ...}``, ``{cron: "0 8 * * *", entity: ..., where: ...}``, ``{manual: entity type}``."""
    entity: str | None = None
    """The trigger's entity type, when the event type does not tell it."""
    conditions: list[str] = Field(default_factory=list)
    actions: list[Any] = Field(default_factory=list)
    steps: list[Any] = Field(default_factory=list)
    """The same as ``actions`` (for flows that branch and wait, ``steps`` reads better)."""
    dedupe: DedupeSpec | None = None
    concurrency: int | None = Field(None, ge=1, le=10_000)
    """Runs of this flow in progress at once, at most."""
    rate: RateSpec | None = None
    retry: RetrySpec = RetrySpec()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_label(value, "flow name")

    @field_validator("conditions", mode="before")
    @classmethod
    def _one_condition(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _steps(self) -> FlowSpec:
        if self.actions and self.steps:
            raise ValueError("give the steps under 'actions' or 'steps', not both")
        if not (self.actions or self.steps):
            raise ValueError("a flow needs at least one step under 'actions' (or 'steps')")
        return self

    @property
    def body(self) -> list[Any]:
        """The steps as written (``actions`` or ``steps``)."""
        return self.actions or self.steps

    @property
    def body_key(self) -> str:
        return "actions" if self.actions else "steps"


class ActionAliasSpec(Strict):
    """A business verb of the workspace (``notify_manager``) for one or more steps."""

    name: str
    description: str = ""
    do: Any
    """What it does: one step or a list of steps, as in a flow."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_label(value, "action name")
