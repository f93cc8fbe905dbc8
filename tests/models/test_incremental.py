"""An incremental version continues the active version's trees on the newer examples."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tagloop.errors import ValidationFailed
from tagloop.ingest.event import Event
from tagloop.models import registry, schedule
from tagloop.models.training import load_artifact
from tagloop.runtime import Runtime
from tests.models.test_point_in_time import CUTOFF, DAY, T0, workspace


def test_incremental_training_adds_trees_on_newer_cutoffs(tmp_path: Path, sqlite_url: str) -> None:
    root = workspace(tmp_path / "ws", sqlite_url)
    model_file = root / "models" / "m.yaml"
    text = model_file.read_text("utf-8").replace('  at: ["2024-02-01"]', "  every: 10d")
    model_file.write_text(text.replace("horizon: 30d", "horizon: 10d"), "utf-8")
    rt = Runtime.open(root)
    try:
        rng = random.Random(3)
        events = []
        for i in range(400):
            plan = rng.choice(["basic", "plus"])
            attributes = {"plan": plan, "status": "active", "age": 20 + i % 40}
            events.append(Event(f"j{i}", "join", "member", f"m{i}", T0, attributes=attributes))
            if rng.random() < (0.6 if plan == "basic" else 0.2):  # the plan matters
                left = CUTOFF + rng.randint(1, 60) * DAY
                events.append(Event(f"x{i}", "cancel", "member", f"m{i}", left))
        rt.ingestor.commit(events)
        model = rt.workspace.models["leave"].spec
        definition = rt.workspace.models["leave"]
        first = schedule.train(rt.db, rt.workspace, definition, CUTOFF + 30 * DAY)
        assert (first.kind, first.metrics["trees"]) == ("full", 30)
        with pytest.raises(ValidationFailed, match="no example is newer"):
            schedule.train(rt.db, rt.workspace, definition, CUTOFF + 30 * DAY, "incremental")
        second = schedule.train(rt.db, rt.workspace, definition, CUTOFF + 50 * DAY, "incremental")
        assert (second.kind, second.base_version) == ("incremental", 1)
        assert second.metrics["trees"] == 30 + model.training.incremental_estimators
        assert second.metrics["data_window"]["cutoffs"] == 2  # the two cutoffs after v1's data
        assert second.data_from > first.data_until - definition.horizon
        with rt.db.read() as conn:
            artifact = load_artifact(registry.artifact(conn, "leave", 2))
        assert artifact.encoder.categories["plan"] == ["basic", "plus"]  # v1's codes
    finally:
        rt.close()
