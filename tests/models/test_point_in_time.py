"""Training sets are point-in-time correct: features see only what was known before the
cutoff. The data here is built to leak: whoever leaves gets a ``status`` attribute and a
burst of support calls after the cutoff, so features read from the current profile (or
counting every event) would give every label away."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagloop.ingest.event import Event
from tagloop.models import schedule
from tagloop.models.features import cutoff_times, load_histories, training_set
from tagloop.models.scoring import feature_values
from tagloop.runtime import Runtime
from tagloop.timeutil import parse_time, zone
from tests.conftest import sqlite_copy

DAY = 86_400_000_000
TZ = zone("Asia/Shanghai")
T0 = parse_time("2024-01-01", TZ)
CUTOFF = parse_time("2024-02-01", TZ)

ENTITY = """
name: member
fields:
  plan: string
  status: string
  age: integer
events:
  call: {properties: {minutes: number}}
  cancel: {}
"""
MODEL = """
name: leave
entity: member
features:
  cancelled: status == 'cancelled'
  calls: count(call)
  minutes: sum(call.minutes, 30d)
  plan: plan
  age: age
  days: days_since(first_seen)
label:
  rule: count(cancel, 30d) > 0
  horizon: 30d
  at: ["2024-02-01"]
training: {n_estimators: 30, min_child_samples: 5}
"""


def workspace(root: Path, database: str) -> Path:
    for folder, name, text in (("entities", "member.yaml", ENTITY), ("models", "m.yaml", MODEL)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(text, encoding="utf-8")
    (root / "tagloop.yaml").write_text(f"name: pit\ndatabase: '{database}'\n", encoding="utf-8")
    return root


def leaky_events(n: int, seed: int = 7) -> tuple[list[Event], dict[str, int], set[str]]:
    """Members, a few calls each before the cutoff (unrelated to leaving), and for those
    who leave: a cancel and a status change, and ten calls, all after the cutoff."""
    rng = random.Random(seed)
    events: list[Event] = []
    calls_before: dict[str, int] = {}
    leavers: set[str] = set()
    for i in range(n):
        member = f"m{i}"
        attributes = {"plan": rng.choice(["basic", "plus"]), "status": "active", "age": 30}
        events.append(Event(f"{member}:join", "join", "member", member, T0, attributes=attributes))
        calls_before[member] = rng.randint(0, 3)
        for k in range(calls_before[member]):
            when = T0 + rng.randint(1, 29) * DAY
            events.append(Event(f"{member}:c{k}", "call", "member", member, when, {"minutes": 5.0}))
        if rng.random() < 0.4:
            leavers.add(member)
            left = CUTOFF + rng.randint(1, 20) * DAY
            events.append(
                Event(
                    f"{member}:x",
                    "cancel",
                    "member",
                    member,
                    left,
                    attributes={"status": "cancelled"},
                )
            )
            for k in range(10):
                events.append(
                    Event(
                        f"{member}:a{k}",
                        "call",
                        "member",
                        member,
                        left - DAY + k,
                        {"minutes": 60.0},
                    )
                )
    return events, calls_before, leavers


def test_features_never_see_data_from_after_the_cutoff(tmp_path: Path, database_url: str) -> None:
    rt = Runtime.open(workspace(tmp_path / "ws", database_url))
    try:
        events, calls_before, leavers = leaky_events(300)
        rt.ingestor.commit(events)
        model = rt.workspace.models["leave"]
        histories = load_histories(rt.db, "member")
        cutoffs = cutoff_times(model, histories, rt.clock(), TZ)
        assert cutoffs == [CUTOFF]
        examples = training_set(model, histories, cutoffs, TZ)
        assert len(examples) == 300
        assert {i for i, y in zip(examples.ids, examples.labels, strict=True) if y} == leavers
        for entity_id, row in zip(examples.ids, examples.rows, strict=True):
            cancelled, calls, minutes, _plan, age, days = row
            assert cancelled is False  # the status set after the cutoff is not seen
            assert calls == calls_before[entity_id]  # the calls after it are not counted
            assert minutes == 5.0 * calls_before[entity_id]
            assert (age, days) == (30, 31)
        # The data does leak if read now: the current profiles give the leavers away.
        ids, now_rows, _ = feature_values(rt.db, rt.workspace, model, rt.clock())
        leaked = {i for i, row in zip(ids, now_rows, strict=True) if row[0] is True}
        assert leaked == leavers
        # What the model learns without the leak is noise: far from a perfect AUC.
        version = schedule.train(rt.db, rt.workspace, model, rt.clock())
        assert version.metrics["auc"] < 0.75
    finally:
        rt.close()


OFFSETS = st.lists(
    st.tuples(
        st.integers(0, 3),  # member
        st.integers(0, 59),  # day
        st.sampled_from(["call", "join", "cancel"]),
        st.sampled_from(["basic", "plus", None]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=OFFSETS, cut=st.integers(1, 60))
def test_point_in_time_equals_batch_sql_on_what_was_stored_before(
    tmp_path_factory: object,
    migrated_sqlite: Path,
    rows: list[tuple[int, int, str, str | None]],
    cut: int,
) -> None:
    """The point-in-time features at a cutoff (rebuilt from every event) are what the
    batch evaluator computes, in SQL, at that time on a store holding only the events
    dated before it: no later event, attribute or count reaches them."""
    base = Path(tmp_path_factory.mktemp("pit"))  # type: ignore[attr-defined]
    events = []
    for n, (member, day, kind, plan) in enumerate(rows):
        attributes = {"plan": plan, "age": day} if kind == "join" and plan is not None else None
        if kind == "cancel":
            attributes = {"status": "cancelled"}
        properties = {"minutes": float(day)} if kind == "call" else {}
        events.append(
            Event(
                f"e{n}",
                kind,
                "member",
                f"m{member}",
                T0 + day * DAY,
                properties,
                attributes=attributes,
            )
        )
    cutoff = T0 + cut * DAY
    full = Runtime.open(workspace(base / "full", sqlite_copy(migrated_sqlite, base / "full.db")))
    prefix = Runtime.open(
        workspace(base / "prefix", sqlite_copy(migrated_sqlite, base / "prefix.db"))
    )
    try:
        full.ingestor.commit(events)
        before = [e for e in events if e.time < cutoff]
        if before:
            prefix.ingestor.commit(before)
        model = full.workspace.models["leave"]
        from tagloop.models.features import PointInTime

        evaluator = PointInTime("member", [f.rule for f in model.features], TZ)
        histories = load_histories(full.db, "member")
        pit = {}
        for entity_id, history in histories.items():
            (values,) = evaluator.values(history, [cutoff])
            if values is not None:
                pit[entity_id] = values
        ids, sql_rows, _ = feature_values(prefix.db, prefix.workspace, model, cutoff)
        assert dict(zip(ids, sql_rows, strict=True)) == pit
    finally:
        full.close()
        prefix.close()


def test_review_decisions_label_examples_as_of_their_time(tmp_path: Path, sqlite_url: str) -> None:
    """``label: {reviews: TAG}``: each decided entity is an example with its features as
    of the decision, labelled by it (approved: 1, rejected: 0)."""
    root = workspace(tmp_path / "ws", sqlite_url)
    (root / "tags").mkdir()
    (root / "tags" / "t.yaml").write_text(
        "name: leaving\nentity: member\nrule: count(call) > 1\n", encoding="utf-8"
    )
    model_file = root / "models" / "m.yaml"
    text = model_file.read_text("utf-8").replace(
        '  rule: count(cancel, 30d) > 0\n  horizon: 30d\n  at: ["2024-02-01"]\n',
        "  reviews: leaving\n",
    )
    model_file.write_text(text, encoding="utf-8")
    rt = Runtime.open(root)
    try:
        events, calls_before, _ = leaky_events(30)
        rt.ingestor.commit(events)
        model = rt.workspace.models["leave"]
        assert model.label is None and model.spec.label.reviews == "leaving"
        from tagloop.models.features import reviewed_set

        decisions = {f"m{i}": (i % 2 == 0, CUTOFF) for i in range(20)}
        decisions["m25"] = (False, T0 - DAY)  # before the member existed: no example
        examples = reviewed_set(model, load_histories(rt.db, "member"), decisions, TZ)
        assert examples.ids == sorted(f"m{i}" for i in range(20))
        assert examples.labels == [1 if int(i[1:]) % 2 == 0 else 0 for i in examples.ids]
        assert [row[1] for row in examples.rows] == [calls_before[i] for i in examples.ids]
    finally:
        rt.close()


def test_a_reviews_label_must_name_a_tag_of_the_entity(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", "sqlite:///t.db")
    model_file = root / "models" / "m.yaml"
    text = model_file.read_text("utf-8").replace(
        '  rule: count(cancel, 30d) > 0\n  horizon: 30d\n  at: ["2024-02-01"]\n',
        "  reviews: leavng\n",
    )
    model_file.write_text(text, encoding="utf-8")
    from tagloop.errors import WorkspaceError
    from tagloop.workspace import load_workspace

    try:
        load_workspace(root)
    except WorkspaceError as error:
        assert [str(p) for p in error.problems] == [
            "models/m.yaml:12:12: label.reviews: unknown tag 'leavng'"
        ]
    else:
        raise AssertionError("loaded")
