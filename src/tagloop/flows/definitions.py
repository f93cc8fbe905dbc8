"""Checking a flow file into a `tagloop.flows.steps.Flow`, every problem at its file:line.

Unknown actions and aliases are load errors with a suggestion; so are arguments an action
does not take, arguments that do not validate (when they hold no template), conditions
that do not parse or bind, and event types or tags the workspace does not declare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tagloop.errors import Problem
from tagloop.flows.actions.base import Action, ActionFailed
from tagloop.flows.calls import CallError, parse_call
from tagloop.flows.scope import flow_scope, uses_events
from tagloop.flows.steps import (
    ActionStep,
    Flow,
    IfStep,
    ParallelStep,
    Step,
    Trigger,
    WaitStep,
    WaitUntilStep,
)
from tagloop.names import caret_line, suggest
from tagloop.rules import CompiledRule, RuleError, Scope, compile_rule
from tagloop.timeutil import parse_duration
from tagloop.workspace.flows import ActionAliasSpec, FlowSpec
from tagloop.workspace.yamlfile import PathKey, Positions

CONTROL = ("if", "wait", "wait_until", "parallel")
MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True)
class Located:
    """A spec with where it was written."""

    spec: Any
    positions: Positions
    path: PathKey


def has_template(value: Any) -> bool:
    """Whether ``value`` holds a Jinja2 template anywhere (then it is checked at run time).

    >>> has_template({"message": "订单 {{ event.id }}"}), has_template(["HIGH", 3])
    (True, False)
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


class FlowCompiler:
    """Compiles the flows of one workspace (`compile`), given its actions and aliases."""

    used: dict[str, Any]

    def __init__(
        self,
        workspace: Any,
        actions: Mapping[str, type[Action]],
        aliases: Mapping[str, Located],
        report: Callable[[Problem], None],
    ) -> None:
        self.workspace = workspace
        self.actions = actions
        self.aliases = aliases
        self.report = report
        self.ok = True

    def problem(self, positions: Positions, path: PathKey, message: str) -> None:
        self.ok = False
        self.report(Problem(positions.locate(path), message))

    # -- a flow ---------------------------------------------------------------------------
    def compile(self, item: Located) -> Flow | None:
        spec: FlowSpec = item.spec
        pos, path = item.positions, item.path
        self.ok = True
        self.used: dict[str, Any] = {}
        found = self._trigger(spec, pos, path)
        if found is None:
            return None
        trigger, entity_type, event_type = found
        scope = flow_scope(self.workspace, entity_type, event_type)
        if trigger.kind == "schedule":
            where = spec.trigger.get("where") if isinstance(spec.trigger, dict) else None
            if where is not None:
                trigger = Trigger(
                    "schedule",
                    every=trigger.every,
                    cron=trigger.cron,
                    where=self._condition(str(where), scope, pos, (*path, "trigger", "where")),
                )
        conditions = tuple(
            c
            for i, text in enumerate(spec.conditions)
            if (c := self._condition(text, scope, pos, (*path, "conditions", i))) is not None
        )
        steps = self._steps(spec.body, spec.body_key, scope, pos, (*path, spec.body_key), 0)
        if spec.dedupe is not None:
            self._template(spec.dedupe.key, pos, (*path, "dedupe", "key"))
        if not self.ok:
            return None
        written = {"spec": spec.model_dump(mode="json"), "aliases": self.used}
        digest = hashlib.sha256(orjson.dumps(written, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return Flow(
            spec, entity_type, trigger, conditions, steps, digest[:16], pos.file, dict(self.used)
        )

    def _trigger(
        self, spec: FlowSpec, pos: Positions, path: PathKey
    ) -> tuple[Trigger, str, str | None] | None:
        at = (*path, "trigger")
        raw = spec.trigger
        if isinstance(raw, str):
            raw = {"event": raw}
        if len(raw) != 1 and not ({"every", "cron"} & set(raw)):
            self.problem(
                pos,
                at,
                "a trigger is one of: event, tag_added, tag_removed, "
                "tag_changed, every/cron (with entity and where), manual",
            )
            return None
        dictionary = self.workspace.dictionary
        if "event" in raw:
            event_type = str(raw["event"])
            owners = [name for name, t in dictionary.types.items() if event_type in t.spec.events]
            entity = spec.entity or (owners[0] if len(owners) == 1 else None)
            if entity is None:
                known = sorted(dictionary.event_types())
                if owners:
                    message = (
                        f"event type {event_type!r} belongs to {', '.join(owners)}: "
                        "say which with 'entity:'"
                    )
                else:
                    message = f"unknown event type {event_type!r}{suggest(event_type, known)}"
                self.problem(pos, at, message)
                return None
            if not self._entity(entity, pos, (*path, "entity")):
                return None
            return Trigger("event", event_type), entity, event_type
        for kind in ("tag_added", "tag_removed", "tag_changed"):
            if kind in raw:
                name = str(raw[kind])
                tag = self.workspace.tags.get(name)
                if tag is None:
                    self.problem(
                        pos, at, f"unknown tag {name!r}{suggest(name, self.workspace.tags)}"
                    )
                    return None
                return Trigger(kind, name), tag.entity, None
        if "manual" in raw:
            entity = str(raw["manual"] or spec.entity or "")
            if not self._entity(entity, pos, at):
                return None
            return Trigger("manual"), entity, None
        if "every" in raw or "cron" in raw:
            extra = set(raw) - {"every", "cron", "entity", "where"}
            if extra:
                self.problem(pos, at, f"unknown trigger key {sorted(extra)[0]!r}")
                return None
            entity = str(raw.get("entity") or spec.entity or "")
            if not self._entity(entity, pos, (*at, "entity")):
                return None
            every = raw.get("every")
            if every is not None:
                try:
                    parse_duration(str(every))
                except ValueError as exc:
                    self.problem(pos, (*at, "every"), str(exc))
                    return None
            cron = raw.get("cron")
            if cron is not None:
                from croniter import croniter

                if not croniter.is_valid(str(cron)):
                    self.problem(pos, (*at, "cron"), f"{cron!r} is not a cron expression")
                    return None
            trigger = Trigger("schedule", every=every and str(every), cron=cron and str(cron))
            return trigger, entity, None
        self.problem(
            pos,
            at,
            f"unknown trigger {next(iter(raw))!r}"
            + suggest(
                str(next(iter(raw))),
                ["event", "tag_added", "tag_removed", "tag_changed", "every", "cron", "manual"],
            ),
        )
        return None

    def _entity(self, name: str, pos: Positions, at: PathKey) -> bool:
        if name in self.workspace.dictionary:
            return True
        self.problem(
            pos,
            at,
            self.workspace.dictionary.unknown(name)
            if name
            else "say which entity type with 'entity:'",
        )
        return False

    def _condition(
        self, text: str, scope: Scope, pos: Positions, at: PathKey
    ) -> CompiledRule | None:
        try:
            rule = compile_rule(text, scope)
        except RuleError as exc:
            where, line = pos.locate_in_scalar(at, exc.start, text)
            if line:
                col = int(where.rsplit(":", 1)[1])
                detail = caret_line(line, col, exc.end - exc.start)
            else:
                where, detail = pos.locate(at), ""
            self.ok = False
            self.report(Problem(where, exc.message, detail))
            return None
        aggregate = uses_events(rule.bound)
        if aggregate is not None:
            self.problem(
                pos,
                at,
                f"flow conditions cannot aggregate events ({aggregate}): "
                "define a tag with it and test has_tag(...) or tag(...)",
            )
            return None
        return rule

    def _template(self, text: str, pos: Positions, at: PathKey) -> None:
        from tagloop.flows.templates import check

        try:
            check(text)
        except ActionFailed as exc:
            self.problem(pos, at, exc.message)

    # -- steps ----------------------------------------------------------------------------
    def _steps(
        self, raw: Any, prefix: str, scope: Scope, pos: Positions, at: PathKey, depth: int
    ) -> tuple[Step, ...]:
        if not isinstance(raw, list):
            raw = [raw]
        out: list[Step] = []
        for i, item in enumerate(raw):
            out.extend(self._step(item, f"{prefix}[{i}]", scope, pos, (*at, i), depth))
        return tuple(out)

    def _step(
        self, raw: Any, path: str, scope: Scope, pos: Positions, at: PathKey, depth: int
    ) -> list[Step]:
        if isinstance(raw, str):
            try:
                call = parse_call(raw)
            except CallError as exc:
                where, line = pos.locate_in_scalar(at, exc.offset, raw)
                col = int(where.rsplit(":", 1)[1]) if line else 0
                self.ok = False
                self.report(Problem(where, str(exc), caret_line(line, col, 1) if line else ""))
                return []
            return self._call(
                call.name, list(call.positional), call.named, path, scope, pos, at, depth
            )
        if not isinstance(raw, dict) or not raw:
            self.problem(
                pos,
                at,
                "a step is an action call (text), a mapping "
                "{action: {arguments}}, or one of: if, wait, wait_until, parallel",
            )
            return []
        if "if" in raw:
            return self._if(raw, path, scope, pos, at, depth)
        if "wait" in raw or "wait_until" in raw:
            return self._wait(raw, path, scope, pos, at, depth)
        if "parallel" in raw:
            branches = raw["parallel"]
            extra = set(raw) - {"parallel"}
            if extra or not isinstance(branches, list) or not branches:
                self.problem(pos, at, "parallel: a list of branches (each a step or a list)")
                return []
            return [
                ParallelStep(
                    path,
                    tuple(
                        self._steps(
                            branch, f"{path}.parallel[{i}]", scope, pos, (*at, "parallel", i), depth
                        )
                        for i, branch in enumerate(branches)
                    ),
                )
            ]
        if "action" in raw:
            args = {k: v for k, v in raw.items() if k != "action"}
            return self._call(str(raw["action"]), [], args, path, scope, pos, at, depth)
        if len(raw) == 1:
            name, args = next(iter(raw.items()))
            if args is None:
                args = {}
            if not isinstance(args, dict):
                args_list = args if isinstance(args, list) else [args]
                return self._call(str(name), args_list, {}, path, scope, pos, (*at, name), depth)
            return self._call(str(name), [], args, path, scope, pos, (*at, name), depth)
        self.problem(
            pos,
            at,
            f"a step mapping has one key, the action's name (found "
            f"{', '.join(map(str, raw))}); or use 'action: NAME'",
        )
        return []

    def _call(
        self,
        name: str,
        positional: list[Any],
        named: dict[str, Any],
        path: str,
        scope: Scope,
        pos: Positions,
        at: PathKey,
        depth: int,
    ) -> list[Step]:
        alias = self.aliases.get(name)
        if alias is not None:
            if positional or named:
                self.problem(
                    pos,
                    at,
                    f"action {name!r} is a workspace alias: it takes no "
                    "arguments (declare another alias for other arguments)",
                )
                return []
            if depth >= MAX_ALIAS_DEPTH:
                self.problem(
                    pos,
                    at,
                    f"action aliases nest deeper than {MAX_ALIAS_DEPTH} "
                    f"levels at {name!r} (an alias that names itself?)",
                )
                return []
            spec: ActionAliasSpec = alias.spec
            self.used[name] = spec.do
            expanded = self._steps(
                spec.do, f"{path}.{name}", scope, alias.positions, (*alias.path, "do"), depth + 1
            )
            return [
                ActionStep(s.path, s.action, s.positional, s.named, s.alias or name)
                if isinstance(s, ActionStep)
                else s
                for s in expanded
            ]
        action = self.actions.get(name)
        if action is None:
            known = [*self.actions, *self.aliases]
            self.problem(
                pos,
                at,
                f"unknown action {name!r}{suggest(name, known)} "
                f"(actions: {', '.join(sorted(self.actions))}; aliases are declared "
                "in actions/*.yaml)",
            )
            return []
        allowed = set(action.Args.model_fields) | {
            f.alias for f in action.Args.model_fields.values() if f.alias
        }
        for key in named:
            if key not in allowed:
                self.problem(
                    pos,
                    (*at, key),
                    f"{name}() has no argument {key!r}{suggest(key, sorted(allowed))}",
                )
                return []
        if not has_template([positional, named]):
            try:
                action.parse_args(positional, named)
            except ActionFailed as exc:
                self.problem(pos, at, exc.message)
                return []
        else:
            for key, value in named.items():
                if isinstance(value, str) and has_template(value):
                    self._template(value, pos, (*at, key))
        return [ActionStep(path, action, tuple(positional), dict(named))]

    def _if(
        self, raw: dict[str, Any], path: str, scope: Scope, pos: Positions, at: PathKey, depth: int
    ) -> list[Step]:
        extra = set(raw) - {"if", "then", "else"}
        if extra or "then" not in raw:
            self.problem(pos, at, "if: CONDITION needs then: [steps] (and optionally else:)")
            return []
        condition = self._condition(str(raw["if"]), scope, pos, (*at, "if"))
        then = self._steps(raw["then"], f"{path}.then", scope, pos, (*at, "then"), depth)
        otherwise = self._steps(
            raw.get("else") or [], f"{path}.else", scope, pos, (*at, "else"), depth
        )
        if condition is None:
            return []
        return [IfStep(path, condition, then, otherwise)]

    def _wait(
        self, raw: dict[str, Any], path: str, scope: Scope, pos: Positions, at: PathKey, depth: int
    ) -> list[Step]:
        if "wait" in raw:
            if set(raw) != {"wait"}:
                self.problem(pos, at, "wait: DURATION takes no other keys")
                return []
            try:
                return [WaitStep(path, parse_duration(str(raw["wait"])))]
            except ValueError as exc:
                self.problem(pos, (*at, "wait"), str(exc))
                return []
        extra = set(raw) - {"wait_until", "timeout", "check_every", "on_timeout"}
        if extra or "timeout" not in raw:
            self.problem(
                pos,
                at,
                "wait_until: CONDITION needs timeout: DURATION (and "
                "optionally check_every: DURATION, on_timeout: [steps])",
            )
            return []
        condition = self._condition(str(raw["wait_until"]), scope, pos, (*at, "wait_until"))
        durations = []
        for key, default in (("timeout", None), ("check_every", "1m")):
            try:
                durations.append(parse_duration(str(raw.get(key, default))))
            except ValueError as exc:
                self.problem(pos, (*at, key), str(exc))
                return []
        on_timeout = self._steps(
            raw.get("on_timeout") or [],
            f"{path}.on_timeout",
            scope,
            pos,
            (*at, "on_timeout"),
            depth,
        )
        if condition is None:
            return []
        return [WaitUntilStep(path, condition, durations[0], durations[1], on_timeout)]
