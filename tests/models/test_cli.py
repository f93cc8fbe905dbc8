"""``tagloop models ...`` in process: what people type and what they see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagloop.demo import telco
from tagloop.runtime import Runtime
from tests.cli.test_cli import run
from tests.models.conftest import DATA, telco_workspace


def test_train_list_show_promote_rollback_score(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = telco_workspace(tmp_path / "ws", sqlite_url)
    rt = Runtime.open(root)
    telco.load(rt, DATA)
    rt.close()
    ws = ["-w", str(root), "models"]
    code, out, _ = run(capsys, *ws, "train", "churn")
    assert code == 0 and out.startswith("churn v1 (full): active - first version")
    assert "baseline (logistic regression): AUC 0.843" in out
    code, out, _ = run(capsys, *ws, "train", "churn", "--json")
    assert code == 0 and json.loads(out)["status"] == "active"
    code, out, _ = run(capsys, *ws, "list", "--json")
    assert [(v["version"], v["status"]) for v in json.loads(out)] == [(2, "active"), (1, "retired")]
    code, out, _ = run(capsys, *ws, "show", "churn", "--version", "1")
    shown = json.loads(out)
    assert shown["metrics"]["rows"]["holdout"] == 1409 and shown["definition"]["name"] == "churn"
    code, out, _ = run(capsys, *ws, "rollback", "churn")
    assert (code, out.strip()) == (
        0,
        "churn rolled back to v1 (score again: tagloop models score churn)",
    )
    code, out, _ = run(capsys, *ws, "promote", "churn", "2")
    assert code == 0 and out.startswith("churn v2 is active")
    code, out, _ = run(capsys, *ws, "score", "churn", "--json")
    report = json.loads(out)
    assert (report["entities"], report["evaluator"], report["version"]) == (7043, "profile", 2)
    code, out, _ = run(capsys, *ws, "explain", "churn", "7590-VHVEG")
    why = json.loads(out)
    assert code == 0 and why["version"] == 2 and len(why["contributions"]) == 20
    code, out, _ = run(capsys, *ws, "train", "--due")
    assert (code, out.strip()) == (0, "no model is due for retraining")


def test_mistakes_get_one_line_answers(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = telco_workspace(tmp_path / "ws", sqlite_url)
    ws = ["-w", str(root), "models"]
    code, _, err = run(capsys, *ws, "show", "churm")
    assert code == 1 and "unknown model 'churm' (did you mean 'churn'?) (models: churn)" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, *ws, "score", "churn")
    assert code == 1 and "model 'churn' has no active version: train it first" in err
    code, _, err = run(capsys, *ws, "train", "churn")
    assert code == 1 and "examples are too few to train" in err
    code, _, err = run(capsys, *ws, "train")
    assert code == 1 and "give a model NAME, or --due" in err
