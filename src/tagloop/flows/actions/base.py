"""What every flow action is: a name, a pydantic model of its arguments, and ``run``.

An action gets its arguments already rendered (templates filled from the run's scope) and
validated, and an `ActionContext` that names the attempt. It returns a JSON-able dict (its
result, kept in the run's trace) or raises:

- `Retry` for a failure worth retrying (a 5xx, a timeout, a 429 with ``Retry-After``): the
  runner waits with exponential backoff and jitter, or ``retry_after`` when given, until the
  flow's give-up;
- `ActionFailed` for a failure retrying cannot fix (a 4xx, a bad address): the run fails at
  once, with the message in its trace.

Actions with effects outside tagloop (``side_effects = True``) must make a retry harmless:
`ActionContext.idempotency_key` is the same for every attempt of one step of one run (the
``Idempotency-Key`` of a webhook, the ``webhook-id`` of its signature).

>>> from pydantic import BaseModel
>>> class Shout(Action):
...     name = "shout"
...     positional = ("text",)
...     class Args(BaseModel):
...         text: str
...     async def run(self, args, ctx):
...         return {"said": args.text.upper()}
>>> Shout.parse_args(["hello"], {})
Args(text='hello')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tagloop.errors import TagloopError

if TYPE_CHECKING:
    from tagloop.flows.effects import Effects


class NoArgs(BaseModel):
    """The arguments of an action that takes none."""

    model_config = ConfigDict(extra="forbid")


class ActionFailed(TagloopError):
    """The action failed in a way a retry cannot fix: the run fails with this message."""

    status = 422
    code = "action_failed"


class Retry(TagloopError):
    """The action failed and may succeed later: retried with backoff, or after
    ``retry_after`` seconds when the other side said so (``Retry-After``)."""

    status = 503
    code = "action_retry"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class ActionContext:
    """What an action knows of the attempt it runs in."""

    run_id: str
    """The flow run (a UUID text)."""
    step: str
    """The step's path in the flow (``actions[1]``, ``steps[2].then[0]``)."""
    attempt: int
    """1 for the first try, 2 for the first retry, ..."""
    flow: str
    flow_version: int
    now: int
    """Epoch microseconds (UTC) at the start of the attempt."""
    scope: Mapping[str, Any] = field(default_factory=dict)
    """What templates see: ``event``, ``entity``, the entity's type name and the related
    entities' type names (each a dict of attributes with ``id`` and ``tags``), ``run``."""
    effects: Effects | None = None
    """The store-side effects (work orders, attributes, tags, events) of internal actions;
    None in a dry run (``tagloop flows test``), where actions describe what they would do."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Environment variables an action may read (``secret_env`` arguments name them)."""

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this step of this run: ``<run id>:<step>``."""
        return f"{self.run_id}:{self.step}"

    @property
    def dry_run(self) -> bool:
        return self.effects is None


class Action(ABC):
    """One kind of action (``webhook``, ``notify``, ``set_priority``, ...)."""

    name: ClassVar[str]
    """What flows call it (and what workspace aliases map onto)."""
    Args: ClassVar[type[BaseModel]] = NoArgs
    """Its arguments; ``extra="forbid"`` in the model makes a misspelt one a load error."""
    positional: ClassVar[tuple[str, ...]] = ()
    """Argument names for the call form ``set_priority(HIGH)``, in order."""
    side_effects: ClassVar[bool] = True
    """Whether it acts outside tagloop (then a dry run must not call ``run``)."""
    summary: ClassVar[str] = ""
    """One line for `tagloop flows actions` and the docs."""
    renders: ClassVar[frozenset[str]] = frozenset()
    """Arguments the action renders itself from ``ctx.scope`` (the runner renders the
    others before validating them, and leaves these as written: never both)."""

    @classmethod
    def parse_args(cls, positional: Sequence[Any], named: Mapping[str, Any]) -> BaseModel:
        """Validate the arguments of a call (positional ones by `positional`); raises
        `ActionFailed` naming the action and the argument at fault."""
        if len(positional) > len(cls.positional):
            expected = ", ".join(cls.positional) or "no positional arguments"
            raise ActionFailed(
                f"{cls.name}() takes {len(cls.positional)} positional argument(s) "
                f"({expected}), got {len(positional)}"
            )
        values = dict(zip(cls.positional, positional, strict=False))
        for key, value in named.items():
            if key in values:
                raise ActionFailed(f"{cls.name}(): argument {key!r} given twice")
            values[key] = value
        from pydantic import ValidationError

        try:
            return cls.Args.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "arguments"
                problems.append(f"{where}: {error['msg']}")
            raise ActionFailed(f"{cls.name}(): " + "; ".join(problems)) from None

    @abstractmethod
    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        """Do it; return what happened (JSON-able) for the run's trace."""

    def describe(self, args: Any, ctx: ActionContext | None = None) -> dict[str, Any]:
        """What a dry run reports instead of running (default: the arguments)."""
        return {"would": self.name, "args": args.model_dump(mode="json")}
