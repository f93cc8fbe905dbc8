"""``tagloop models train|list|show|promote|rollback|score``: the model registry."""

from __future__ import annotations

import typer
from rich.table import Table

from tagloop.audit import Actor
from tagloop.cli.context import open_runtime
from tagloop.cli.output import err, json_text, out
from tagloop.errors import ValidationFailed
from tagloop.models import registry, scoring
from tagloop.models.explain import explain
from tagloop.models.registry import view
from tagloop.models.schedule import run_due, train
from tagloop.models.scoring import report_view

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="The model (models/*.yaml)."),
    incremental: bool = typer.Option(
        False, "--incremental", help="Continue the active version on the newer examples."
    ),
    due: bool = typer.Option(
        False, "--due", help="Train every model whose schedule says a run is due."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Train a version (point-in-time training set, LightGBM, logistic-regression
    baseline), store it, and promote it if the gate lets it."""
    if (name is None) == (not due):
        raise ValidationFailed("give a model NAME, or --due (every model whose run is due)")
    rt = open_runtime(ctx)
    try:
        if due:
            done = run_due(rt.db, rt.workspace, rt.clock())
            if as_json:
                print(json_text({k: v if isinstance(v, str) else view(v) for k, v in done.items()}))
                return
            for model_name, outcome in done.items():
                if isinstance(outcome, str):
                    err.print(f"{model_name}: not trained: {outcome}")
                else:
                    _print_trained(outcome)
            if not done:
                out.print("no model is due for retraining")
            return
        assert name is not None
        model = scoring.definition(rt.workspace, name)
        kind = "incremental" if incremental else "full"
        version = train(rt.db, rt.workspace, model, rt.clock(), kind, Actor.cli())
        if as_json:
            print(json_text(view(version, full=True)))
        else:
            _print_trained(version)
    finally:
        rt.close()


def _print_trained(version: registry.Version) -> None:
    m = version.metrics
    base = m.get("baseline") or {}
    out.print(
        f"{version.model} v{version.version} ({version.kind}): {version.status} - {version.reason}"
    )
    out.print(
        f"  holdout ({m['holdout']['kind']}, {m['rows']['holdout']} rows): AUC {m['auc']}, "
        f"accuracy {m['accuracy']}, precision {m['precision']} / recall {m['recall']} at "
        f"{m['threshold']}, Brier {m['brier']}"
    )
    out.print(
        f"  baseline (logistic regression): AUC {base.get('auc')}, accuracy {base.get('accuracy')}"
    )
    top = m["feature_importance"][:5]
    out.print("  top features: " + ", ".join(f"{f['feature']} {f['share']:.2f}" for f in top))
    out.print(
        f"  {version.rows} examples, data {m['data_window']['from']} .. {m['data_window']['until']}"
    )


@app.command("list")
def list_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this model's versions."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every trained version, newest first per model."""
    rt = open_runtime(ctx)
    try:
        if name is not None:
            scoring.definition(rt.workspace, name)
        with rt.db.read() as conn:
            views = [view(v) for v in registry.versions(conn, name)]
    finally:
        rt.close()
    if as_json:
        print(json_text(views))
        return
    table = Table("model", "version", "status", "kind", "AUC", "accuracy", "rows", "trained")
    for v in views:
        table.add_row(
            v["model"],
            str(v["version"]),
            v["status"],
            v["kind"],
            str(v["auc"]),
            str(v["accuracy"]),
            str(v["rows"]),
            v["trained_at"],
        )
    out.print(table)


@app.command("show")
def show_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="This version (default: the active one, else the latest)."
    ),
) -> None:
    """One version with every metric (JSON): calibration bins, feature importance,
    the baseline's figures, the definition it was trained with."""
    rt = open_runtime(ctx)
    try:
        scoring.definition(rt.workspace, name)
        with rt.db.read() as conn:
            found = registry.get(conn, name, version)
    finally:
        rt.close()
    print(json_text(view(found, full=True)))


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    version: int = typer.Argument(..., min=1, help="The version to make active."),
) -> None:
    """Make a version active by hand (a candidate the gate kept back, or an old one)."""
    rt = open_runtime(ctx)
    try:
        scoring.definition(rt.workspace, name)
        found = registry.promote(rt.db, name, version, rt.clock(), actor=Actor.cli())
    finally:
        rt.close()
    out.print(f"{name} v{found.version} is active (score again: tagloop models score {name})")


@app.command("rollback")
def rollback_command(
    ctx: typer.Context, name: str = typer.Argument(..., help="The model.")
) -> None:
    """Return to the version that was active before the current one."""
    rt = open_runtime(ctx)
    try:
        scoring.definition(rt.workspace, name)
        found = registry.rollback(rt.db, name, rt.clock(), actor=Actor.cli())
    finally:
        rt.close()
    out.print(f"{name} rolled back to v{found.version} (score again: tagloop models score {name})")


@app.command("score")
def score_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Score every entity with the active version; the model tags follow."""
    rt = open_runtime(ctx)
    try:
        report = scoring.score(rt, name)
    finally:
        rt.close()
    if as_json:
        print(json_text(report_view(report)))
        return
    out.print(
        f"scored {report.entities} {rt.workspace.models[name].entity} entities with {name} "
        f"v{report.version} in {sum(report.seconds.values()):.2f}s "
        f"({report.per_second:,.0f}/s, features by {report.evaluator})"
    )
    for tag, holders in report.tags.items():
        out.print(f"  tag {tag!r}: {holders} entities hold it")


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    entity_id: str = typer.Argument(..., metavar="ID", help="The entity."),
) -> None:
    """An entity's score now and the features that made it (SHAP contributions), JSON."""
    rt = open_runtime(ctx)
    try:
        found = explain(rt, name, entity_id)
    finally:
        rt.close()
    print(json_text(found.as_dict()))


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="models", help="Train, list, promote, roll back and score models.")
