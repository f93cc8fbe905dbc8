"""models/*.yaml: loading, and precise errors (file:line:col, field)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tagloop.errors import WorkspaceError
from tagloop.workspace import load_workspace
from tests.conftest import write_workspace

MODEL = """
    name: upsell
    entity: customer
    features:
      spend: spend
      orders_90d: count(order, 90d)
      city: city
      vip: vip
      last_order: last(order.time)
    label:
      rule: count(order where amount > 500, 30d) > 0
      horizon: 30d
      every: 30d
"""


def problems(root: Path, text: str) -> list[str]:
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "m.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    with pytest.raises(WorkspaceError) as caught:
        load_workspace(root)
    return [str(p).splitlines()[0] for p in caught.value.problems]


def test_a_model_loads_with_encodings_and_defaults(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, "sqlite:///t.db", extra={"models/upsell.yaml": MODEL})
    model = load_workspace(root).models["upsell"]
    assert [(f.name, f.encoding) for f in model.features] == [
        ("spend", "number"),
        ("orders_90d", "number"),
        ("city", "category"),
        ("vip", "boolean"),
        ("last_order", "number"),
    ]
    spec = model.spec
    assert (spec.holdout.kind, spec.holdout.fraction, spec.threshold) == ("stratified", 0.2, 0.5)
    assert (spec.promotion.metric, spec.promotion.margin) == ("auc", 0.01)
    assert (spec.schedule.incremental, spec.schedule.full) == ("weekly", "monthly")
    assert model.horizon == 30 * 86_400_000_000 and model.location == "models/upsell.yaml:2:1"


def test_rules_can_read_a_model_score(tmp_path: Path) -> None:
    tags = "tags:\n  - name: likely\n    entity: customer\n    rule: score('upsell') > 0.7\n"
    root = write_workspace(tmp_path, "sqlite:///t.db", tags=tags, extra={"models/u.yaml": MODEL})
    assert load_workspace(root).tags["likely"].deps.scores == {"upsell"}


def test_errors_name_file_line_and_column(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, "sqlite:///t.db")
    bad = MODEL.replace("count(order, 90d)", "count(ordr, 90d)").replace(
        "horizon: 30d", "horizon: soon"
    )
    found = problems(root, bad.replace("    label:", "    lable: {}\n    label:"))
    assert found == [
        "models/m.yaml:9:1: unknown key 'lable' (did you mean 'label'?) (allowed: name, entity, "
        "description, owner, features, label, holdout, threshold, promotion, schedule, training)",
        "models/m.yaml:12:12: label.horizon: 'soon' is not a duration (examples: 30s, 10m, 1h, "
        "30d, 2w)",
    ]
    found = problems(root, MODEL.replace("count(order, 90d)", "count(ordr, 90d)"))
    assert found == ["models/m.yaml:5:21: unknown event type 'ordr' (did you mean 'order'?)"]


def test_feature_and_reference_errors(tmp_path: Path) -> None:
    root = write_workspace(tmp_path, "sqlite:///t.db")
    assert problems(root, MODEL.replace("city: city", "city: interests")) == [
        "models/m.yaml:6:9: feature 'city' is a list: a feature is a number, a boolean or a "
        "text (category)"
    ]
    assert problems(root, MODEL.replace("entity: customer", "entity: custmer")) == [
        "models/m.yaml:2:9: unknown entity type 'custmer' (did you mean 'customer'?) (known: "
        "account, customer, device, product_batch)"
    ]
    assert problems(root, MODEL.replace("spend: spend", "spend: score('upsell')")) == [
        "models/m.yaml:4:10: a model cannot read its own score"
    ]
    assert problems(root, MODEL.replace("    holdout", "").replace("every: 30d", "every: 0s")) == [
        "models/m.yaml:10:3: label: every: must be a positive duration, e.g. 30d"
    ]
