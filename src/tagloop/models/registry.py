"""The model registry: every trained version, which one is active, and the promotion gate.

A new version is compared with the active one on the holdout metric the model names
(``promotion.metric``: AUC and accuracy higher is better, Brier score lower). It is
promoted when it is not worse by more than ``promotion.margin``; otherwise it stays a
candidate and the reason is stored with it. ``promote`` makes any version active by hand;
``rollback`` returns to the version that was active before the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from tagloop.audit import Actor
from tagloop.audit import record as audit
from tagloop.errors import NotFound, ValidationFailed
from tagloop.models.spec import ModelDefinition
from tagloop.models.training import Trained
from tagloop.store.db import Database
from tagloop.store.tables import model_versions
from tagloop.timeutil import time_text

HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "brier": False}


@dataclass(frozen=True)
class Version:
    model: str
    version: int
    entity_type: str
    status: str
    kind: str
    base_version: int | None
    metrics: dict[str, Any]
    definition: dict[str, Any]
    features_digest: str
    workspace_revision: str
    rows: int
    data_from: int
    data_until: int
    reason: str
    trained_at: int
    promoted_at: int | None


_COLUMNS = [c for c in model_versions.c if c.name != "artifact"]


def _version(row: Any) -> Version:
    return Version(**{c.name: getattr(row, c.name) for c in _COLUMNS})


def gate(metric: str, margin: float, new: float | None, active: float | None) -> str | None:
    """Why ``new`` may not replace ``active`` (None: it may).

    >>> gate("auc", 0.01, 0.835, 0.84) is None
    True
    >>> gate("auc", 0.01, 0.80, 0.84)
    "auc 0.8 is worse than the active version's 0.84 by 0.04, more than the margin 0.01"
    >>> gate("brier", 0.01, 0.2, 0.1)
    "brier 0.2 is worse than the active version's 0.1 by 0.1, more than the margin 0.01"
    """
    if active is None:
        return None
    if new is None:
        return f"{metric} could not be measured on the holdout (one class only)"
    worse = (active - new) if HIGHER_IS_BETTER[metric] else (new - active)
    if worse > margin + 1e-12:
        return (
            f"{metric} {new:g} is worse than the active version's {active:g} by "
            f"{round(worse, 4):g}, more than the margin {margin:g}"
        )
    return None


def record(
    db: Database,
    model: ModelDefinition,
    trained: Trained,
    revision: str,
    now: int,
    *,
    kind: str = "full",
    base_version: int | None = None,
    actor: Actor | None = None,
) -> Version:
    """Store a trained version and pass it through the promotion gate (audited as
    ``model.train``)."""
    promotion = model.spec.promotion
    with db.write() as conn:
        number = _next(conn, model.name)
        current = active(conn, model.name)
        new = trained.metrics.get(promotion.metric)
        refused = gate(
            promotion.metric,
            promotion.margin,
            new,
            current.metrics.get(promotion.metric) if current is not None else None,
        )
        if refused is None:
            reason = (
                "first version"
                if current is None
                else f"{promotion.metric} {new:g} against v{current.version}'s "
                f"{current.metrics.get(promotion.metric):g} (margin {promotion.margin:g})"
            )
        else:
            reason = f"kept as a candidate: {refused} (v{current.version})"  # type: ignore[union-attr]
        if refused is None:
            _retire_active(conn, model.name)
        conn.execute(
            model_versions.insert().values(
                model=model.name,
                version=number,
                entity_type=model.entity,
                status="active" if refused is None else "candidate",
                kind=kind,
                base_version=base_version,
                artifact=trained.artifact,
                metrics=trained.metrics,
                definition=model.spec.model_dump(mode="json"),
                features_digest=model.digest,
                workspace_revision=revision,
                rows=trained.rows,
                data_from=trained.data_from,
                data_until=trained.data_until,
                reason=reason,
                trained_at=now,
                promoted_at=now if refused is None else None,
            )
        )
        stored = get(conn, model.name, number)
        _audit(db, conn, actor, "model.train", stored, now)
        return stored


def _next(conn: Connection, name: str) -> int:
    found = conn.execute(
        select(func.max(model_versions.c.version)).where(model_versions.c.model == name)
    ).scalar()
    return int(found or 0) + 1


def _retire_active(conn: Connection, name: str) -> None:
    conn.execute(
        update(model_versions)
        .where(model_versions.c.model == name, model_versions.c.status == "active")
        .values(status="retired")
    )


def active(conn: Connection, name: str) -> Version | None:
    row = conn.execute(
        select(*_COLUMNS).where(model_versions.c.model == name, model_versions.c.status == "active")
    ).first()
    return _version(row) if row is not None else None


def get(conn: Connection, name: str, version: int | None = None) -> Version:
    """A version (default: the active one, else the latest); NotFound names what exists."""
    query = select(*_COLUMNS).where(model_versions.c.model == name)
    if version is not None:
        row = conn.execute(query.where(model_versions.c.version == version)).first()
    else:
        found = active(conn, name)
        if found is not None:
            return found
        row = conn.execute(query.order_by(model_versions.c.version.desc())).first()
    if row is None:
        known = [v.version for v in versions(conn, name)]
        if not known:
            raise NotFound(
                f"model {name!r} has no trained version (train it: tagloop models train {name})"
            )
        raise NotFound(
            f"model {name!r} has no version {version} (versions: {', '.join(map(str, known))})"
        )
    return _version(row)


def artifact(conn: Connection, name: str, version: int) -> bytes:
    row = conn.execute(
        select(model_versions.c.artifact).where(
            model_versions.c.model == name, model_versions.c.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} has no version {version}")
    return bytes(row[0])


def versions(conn: Connection, name: str | None = None) -> list[Version]:
    """Every version (of one model), newest first."""
    query = select(*_COLUMNS).order_by(model_versions.c.model, model_versions.c.version.desc())
    if name is not None:
        query = query.where(model_versions.c.model == name)
    return [_version(row) for row in conn.execute(query)]


def _audit(
    db: Database, conn: Connection, actor: Actor | None, action: str, version: Version, at: int
) -> None:
    summary = {
        "version": version.version,
        "status": version.status,
        "reason": version.reason,
        "auc": version.metrics.get("auc"),
        "workspace_revision": version.workspace_revision,
    }
    audit(
        db,
        conn,
        actor=actor or Actor.system(),
        action=action,
        target_type="model",
        target_id=version.model,
        after=summary,
        at=at,
    )


def promote(
    db: Database, name: str, version: int, now: int, reason: str = "", actor: Actor | None = None
) -> Version:
    """Make ``version`` the active one (by hand: the gate is not asked; audited as
    ``model.promote``)."""
    with db.write() as conn:
        target = get(conn, name, version)
        if target.status == "active":
            raise ValidationFailed(f"model {name!r} v{version} is already the active version")
        _retire_active(conn, name)
        conn.execute(
            update(model_versions)
            .where(model_versions.c.model == name, model_versions.c.version == version)
            .values(status="active", promoted_at=now, reason=reason or "promoted by hand")
        )
        promoted = get(conn, name, version)
        _audit(db, conn, actor, "model.promote", promoted, now)
        return promoted


def rollback(db: Database, name: str, now: int, actor: Actor | None = None) -> Version:
    """Return to the version that was active before the current one (audited as
    ``model.rollback``)."""
    with db.write() as conn:
        current = active(conn, name)
        if current is None:
            raise ValidationFailed(f"model {name!r} has no active version to roll back")
        earlier = [
            v
            for v in versions(conn, name)
            if v.promoted_at is not None and v.version != current.version and v.status == "retired"
        ]
        if not earlier:
            raise ValidationFailed(
                f"model {name!r} has no earlier active version than v{current.version}"
            )
        previous = max(earlier, key=lambda v: (v.promoted_at or 0, v.version))
        conn.execute(
            update(model_versions)
            .where(model_versions.c.model == name, model_versions.c.version == current.version)
            .values(
                status="retired", promoted_at=None, reason=f"rolled back to v{previous.version}"
            )
        )
        conn.execute(
            update(model_versions)
            .where(model_versions.c.model == name, model_versions.c.version == previous.version)
            .values(status="active", promoted_at=now, reason=f"rollback from v{current.version}")
        )
        restored = get(conn, name, previous.version)
        _audit(db, conn, actor, "model.rollback", restored, now)
        return restored


def view(version: Version, *, full: bool = False) -> dict[str, Any]:
    """A version as the CLI and the API show it (``full``: with every metric)."""
    metrics = version.metrics
    body: dict[str, Any] = {
        "model": version.model,
        "version": version.version,
        "entity": version.entity_type,
        "status": version.status,
        "kind": version.kind,
        "base_version": version.base_version,
        "auc": metrics.get("auc"),
        "accuracy": metrics.get("accuracy"),
        "baseline_auc": (metrics.get("baseline") or {}).get("auc"),
        "rows": version.rows,
        "data_from": time_text(version.data_from),
        "data_until": time_text(version.data_until),
        "reason": version.reason,
        "features_digest": version.features_digest,
        "workspace_revision": version.workspace_revision,
        "trained_at": time_text(version.trained_at),
        "promoted_at": time_text(version.promoted_at) if version.promoted_at else None,
    }
    if full:
        body["metrics"] = metrics
        body["definition"] = version.definition
    return body
