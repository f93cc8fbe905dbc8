"""A checked flow: its trigger, compiled conditions and the tree of steps the runner walks.

Every step has a ``path`` (``actions[1]``, ``steps[0].then[2]``, ``steps[3].parallel[1][0]``)
that is stable for a version of the flow: the runner records each step's outcome under it,
and a resumed run replays the tree, skipping the steps already recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tagloop.flows.actions.base import Action
from tagloop.rules import CompiledRule
from tagloop.workspace.flows import FlowSpec

TriggerKind = Literal["event", "tag_added", "tag_removed", "tag_changed", "schedule", "manual"]


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    name: str | None = None
    """The event type (``event``) or the tag (``tag_*``)."""
    every: str | None = None
    cron: str | None = None
    where: CompiledRule | None = None
    """Schedules: the entities a scheduled run starts for."""

    def describe(self) -> str:
        """``event order_created``, ``tag_added VIP``, ``every 1h``, ``manual``."""
        if self.kind == "schedule":
            return f"every {self.every}" if self.every else f"cron {self.cron}"
        return f"{self.kind} {self.name}" if self.name else self.kind


@dataclass(frozen=True)
class ActionStep:
    path: str
    action: type[Action]
    positional: tuple[Any, ...] = ()
    named: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    """The workspace verb this step came from (``notify_manager``), if any."""

    @property
    def label(self) -> str:
        return self.alias or self.action.name


@dataclass(frozen=True)
class IfStep:
    path: str
    condition: CompiledRule
    then: tuple[Step, ...]
    otherwise: tuple[Step, ...] = ()


@dataclass(frozen=True)
class WaitStep:
    path: str
    duration_us: int


@dataclass(frozen=True)
class WaitUntilStep:
    path: str
    condition: CompiledRule
    timeout_us: int
    check_every_us: int
    on_timeout: tuple[Step, ...] = ()


@dataclass(frozen=True)
class ParallelStep:
    path: str
    branches: tuple[tuple[Step, ...], ...]


Step = ActionStep | IfStep | WaitStep | WaitUntilStep | ParallelStep


@dataclass(frozen=True)
class Flow:
    spec: FlowSpec
    entity_type: str
    trigger: Trigger
    conditions: tuple[CompiledRule, ...]
    steps: tuple[Step, ...]
    digest: str
    """A hash of the definition and the aliases it uses: a new one is a new version."""
    file: str = ""
    aliases: dict[str, Any] = field(default_factory=dict)
    """The workspace aliases the steps use, as written (``name -> do``)."""

    @property
    def name(self) -> str:
        return self.spec.name

    def walk(self) -> list[Step]:
        """Every step, depth first."""
        found: list[Step] = []

        def visit(steps: tuple[Step, ...]) -> None:
            for step in steps:
                found.append(step)
                if isinstance(step, IfStep):
                    visit(step.then)
                    visit(step.otherwise)
                elif isinstance(step, WaitUntilStep):
                    visit(step.on_timeout)
                elif isinstance(step, ParallelStep):
                    for branch in step.branches:
                        visit(branch)

        visit(self.steps)
        return found
