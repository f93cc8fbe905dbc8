"""Batch scoring throughput: entities scored per second by ``tagloop models score``.

The workspace is the demo's subscriber type and churn model. Its data is the real Telco
sample resampled to ``--entities`` subscribers (each a copy of a random Telco row under
a new id, so the value distributions are the real ones); the churn model is trained on
it once, then scored ``--runs`` times. A run is what ``tagloop models score churn``
does: every feature of every subscriber computed at ``now`` (these read only the profile:
the streaming evaluator's closures over the profile rows), LightGBM's prediction, the
scores written to ``model_scores``, and the model tag ``churn_risk`` (``score('churn') >
0.7``) recomputed in batch. Reported: the median run, end to end and by phase.

    .venv/bin/python -m bench.models                       # SQLite and PostgreSQL, to the docs
    .venv/bin/python -m bench.models --backend sqlite --entities 20000 --no-record
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.common import machine, record
from tagloop.demo import TEMPLATE, telco
from tagloop.ingest.event import Event
from tagloop.models import schedule, scoring
from tagloop.runtime import Runtime

TARGET = 100_000  # entities scored per second (issue 7)
PG = "postgresql://postgres@127.0.0.1:5432"


def workspace(root: Path, database: str) -> Path:
    for folder in ("entities", "models", "tags"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATE / "entities" / "subscriber.yaml", root / "entities")
    shutil.copy(TEMPLATE / "models" / "churn.yaml", root / "models")
    shutil.copy(TEMPLATE / "tags" / "subscriber.yaml", root / "tags")
    (root / "tagloop.yaml").write_text(f"name: bench\ndatabase: '{database}'\n", "utf-8")
    return root


def subscribers(path: Path, count: int, seed: int = 11) -> list[Event]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = random.Random(seed)
    out = []
    for i in range(count):
        row = rng.choice(rows)
        out.append(
            Event(
                f"bench:{i}",
                "subscription",
                "subscriber",
                f"S{i:07d}",
                telco.SNAPSHOT,
                attributes=telco.attributes(row),
                source="bench",
            )
        )
        if row["Churn"] == "Yes":
            out.append(
                Event(
                    f"bench:{i}:churned",
                    "churned",
                    "subscriber",
                    f"S{i:07d}",
                    telco.CUTOFF + telco.churn_day(f"S{i}") * telco.DAY,
                    attributes={"status": "churned"},
                    source="bench",
                )
            )
    return out


def database(backend: str, root: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{root / 'bench.db'}", None
    name = f"tagloop_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        f"{PG}/postgres".replace("://", "+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG}/{name}", name


def drop(name: str) -> None:
    admin = sa.create_engine(
        f"{PG}/postgres".replace("://", "+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(backend: str, entities: int, runs: int) -> dict[str, float]:
    data = telco.find_telco()
    if data is None:
        raise SystemExit("the Telco data set is not in ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url, pg_name = database(backend, root)
        try:
            rt = Runtime.open(workspace(root / "ws", url))
            try:
                events = subscribers(data, entities)
                started = time.perf_counter()
                for i in range(0, len(events), 5_000):
                    rt.ingestor.commit(events[i : i + 5_000])
                loaded = time.perf_counter() - started
                started = time.perf_counter()
                version = schedule.train(
                    rt.db, rt.workspace, rt.workspace.models["churn"], rt.clock()
                )
                trained = time.perf_counter() - started
                reports = [scoring.score(rt, "churn") for _ in range(runs)]
            finally:
                rt.close()
        finally:
            if pg_name:
                drop(pg_name)
    totals = [sum(r.seconds.values()) for r in reports]
    median = statistics.median(totals)
    best = reports[totals.index(min(totals, key=lambda t: abs(t - median)))]
    result = {
        "entities": float(best.entities),
        "per_second": best.entities / median,
        "seconds": median,
        "load": loaded,
        "train": trained,
        "auc": float(version.metrics["auc"]),
        "holders": float(best.tags.get("churn_risk", 0)),
    }
    for phase, seconds in best.seconds.items():
        result[phase] = seconds
        result[f"{phase}_per_second"] = best.entities / seconds if seconds else 0.0
    print(backend, {k: round(v, 3) for k, v in result.items()})
    return result


def report(results: dict[str, dict[str, float]], runs: int) -> str:
    lines = [
        "Batch scoring with the demo's churn model (20 features, 100 trees) of Telco-shaped",
        f"subscribers (real rows resampled under new ids); the median of {runs} runs of",
        "`tagloop models score churn`. Phases: features (profile rows read and the",
        "features computed), predict (encoding and LightGBM), write (`model_scores`), tags",
        "(`churn_risk` recomputed in batch). Reproduce: `.venv/bin/python -m bench.models`.",
        "",
        f"Machine: {machine()}.",
        "",
        "| backend | entities | entities/s (end to end) | features | predict | write | tags |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        phases = " | ".join(
            f"{r[p]:.2f} s ({r[p + '_per_second']:,.0f}/s)"
            for p in ("features", "predict", "write", "tags")
        )
        lines.append(
            f"| {backend} | {r['entities']:,.0f} | **{r['per_second']:,.0f}** | {phases} |"
        )
    lines += ["", "| target | measured | |", "|---|---|---|"]
    for backend, r in results.items():
        verdict = "met" if r["per_second"] >= TARGET else "**missed**"
        target = f"{TARGET:,} entities scored/s in batch ({backend})"
        lines.append(f"| {target} | {r['per_second']:,.0f}/s | {verdict} |")
        scoring = r["entities"] / (r["features"] + r["predict"] + r["write"])
        lines.append(
            f"| the same without the tag recompute ({backend}) | {scoring:,.0f}/s | "
            f"{'met' if scoring >= TARGET else '**missed**'} |"
        )
    lines += [
        "",
        "What bounds it: the phases add up. Predicting and writing alone run faster than",
        "the target; computing the features and recomputing the model tag do not, on two",
        "cores. Features: decoding each profile's JSON and reading 20 values in Python (the",
        "features of this model read only the profile; in SQL, as `json_extract` per",
        "feature, they took three times longer), and the one computed feature",
        "(`total_charges / max(tenure, 1)`) costs as much as the 19 others through the",
        "evaluator's generic function calls. Predict: LightGBM walks 100 trees per entity,",
        "and encoding the rows (category codes) is Python. Write: one",
        "upsert per score on SQLite, one array statement per 50,000 on PostgreSQL. Tags:",
        "the batch recompute of `churn_risk` reads every entity's current assignment to",
        "diff it. A model with aggregates adds the batch evaluator's event scan to the",
        "features phase.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = {b: run(b, args.entities, args.runs) for b in backends}
    text = report(results, args.runs)
    print(text)
    if not args.no_record:
        record("models", "## Models: batch scoring (issue 7)\n\n" + text)


if __name__ == "__main__":
    main()
