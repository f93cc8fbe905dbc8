"""Training runs and their schedule.

`train` builds the point-in-time training set of a model from the store, fits a version
(full: from scratch on every example; incremental: the active version's trees continued
on the examples newer than its data) and records it in the registry, through the
promotion gate. `due` says which kind of retraining a model's schedule asks for now:
``schedule.full`` and ``schedule.incremental`` are cron expressions (or ``daily``,
``weekly``, ``monthly``, ``never``) in the workspace's time zone, by default monthly and
weekly, as the reference platform retrains; a full run due makes the incremental one
moot. `run_due` trains what is due (``tagloop models train --due``, for cron or a timer).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tagloop.audit import Actor
from tagloop.errors import ValidationFailed
from tagloop.models import registry
from tagloop.models.features import cutoff_times, load_histories, reviewed_set, training_set
from tagloop.models.spec import ModelDefinition
from tagloop.models.training import fit
from tagloop.store.db import Database
from tagloop.timeutil import from_us, to_us
from tagloop.workspace import Workspace
from tagloop.workspace.models import SCHEDULE_ALIASES


def train(
    db: Database,
    workspace: Workspace,
    model: ModelDefinition,
    now: int,
    kind: str = "full",
    actor: Actor | None = None,
) -> registry.Version:
    """Train and record one version of ``model`` (``kind``: full or incremental)."""
    histories = load_histories(db, model.entity, model.reads_tags)
    decisions = _decisions(db, model, now)
    if decisions is not None:
        cutoffs = sorted({at for _, at in decisions.values()})
    else:
        cutoffs = cutoff_times(model, histories, now, workspace.timezone)
    base: registry.Version | None = None
    artifact = None
    if kind == "incremental":
        with db.read() as conn:
            base = registry.active(conn, model.name)
            if base is None:
                raise ValidationFailed(
                    f"model {model.name!r} has no active version to continue: train it in "
                    "full first"
                )
            if base.features_digest != model.digest:
                raise ValidationFailed(
                    f"model {model.name!r}: the features changed since v{base.version}; "
                    "an incremental version cannot continue it (train in full)"
                )
            artifact = registry.artifact(conn, model.name, base.version)
        # only examples whose cutoff is after the base version's data
        cutoffs = [c for c in cutoffs if c > base.data_until - model.horizon]
        if not cutoffs:
            raise ValidationFailed(
                f"model {model.name!r}: no example is newer than v{base.version}'s data "
                "(nothing to learn incrementally)"
            )
    if not cutoffs:
        raise ValidationFailed(
            f"model {model.name!r}: no cutoff time has an observable label yet "
            f"(label.horizon {model.spec.label.horizon})"
        )
    if decisions is not None:
        kept = {e: d for e, d in decisions.items() if d[1] in set(cutoffs)}
        examples = reviewed_set(model, histories, kept, workspace.timezone)
    else:
        examples = training_set(model, histories, cutoffs, workspace.timezone)
    trained = fit(model, examples, base=artifact)
    return registry.record(
        db,
        model,
        trained,
        workspace.revision,
        now,
        kind=kind,
        base_version=base.version if base is not None else None,
        actor=actor,
    )


def _decisions(
    db: Database, model: ModelDefinition, now: int
) -> dict[str, tuple[object, int]] | None:
    """The review decisions that label ``model`` (None: its label is a rule)."""
    tag = model.spec.label.reviews
    if tag is None:
        return None
    from tagloop.review.labels import decided

    with db.read() as conn:
        found = decided(db, conn, tag)
    return {entity: (label, at) for entity, (label, at) in found.items() if at <= now}


def _cron(text: str) -> str | None:
    if text == "never":
        return None
    return SCHEDULE_ALIASES.get(text, text)


def last_due(expression: str, now: int, tz: ZoneInfo) -> int | None:
    """The latest time at or before ``now`` that the schedule names (None: never).

    >>> from tagloop.timeutil import parse_time
    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> from tagloop.timeutil import time_text
    >>> time_text(last_due("monthly", parse_time("2024-03-15T12:00", tz), tz))
    '2024-02-29T19:00:00.000000Z'
    """
    from croniter import croniter

    cron = _cron(expression)
    if cron is None:
        return None
    start: datetime = from_us(now, tz)
    previous = croniter(cron, start).get_prev(datetime)
    return to_us(previous, tz)


def due(
    model: ModelDefinition, versions: list[registry.Version], now: int, tz: ZoneInfo
) -> str | None:
    """``full``, ``incremental`` or None: what the schedule asks for at ``now``, given the
    versions trained so far (a run is due when its last scheduled time has passed since
    the last version of that kind, or of a full one)."""
    schedule = model.spec.schedule
    fulls = [v.trained_at for v in versions if v.kind == "full"]
    last_full = max(fulls, default=None)
    last_any = max((v.trained_at for v in versions), default=None)
    full_at = last_due(schedule.full, now, tz)
    if last_full is None or (full_at is not None and last_full < full_at):
        return "full"
    incremental_at = last_due(schedule.incremental, now, tz)
    if incremental_at is not None and last_any is not None and last_any < incremental_at:
        return "incremental"
    return None


def run_due(db: Database, workspace: Workspace, now: int) -> dict[str, registry.Version | str]:
    """Train every model whose retraining is due; per model, the version or why not."""
    done: dict[str, registry.Version | str] = {}
    for name in sorted(workspace.models):
        model = workspace.models[name]
        with db.read() as conn:
            versions = registry.versions(conn, name)
        kind = due(model, versions, now, workspace.timezone)
        if kind is None:
            continue
        try:
            done[name] = train(db, workspace, model, now, kind)
        except ValidationFailed as exc:
            done[name] = exc.message
    return done
