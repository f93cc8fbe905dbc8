"""Console output shared by the commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def json_text(value: Any) -> str:
    """What ``--json`` prints: indented JSON, times and other values as text.

    >>> print(json_text({"n": 1}))
    {
      "n": 1
    }
    """
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def rejections(samples: list[str], rejected: int) -> None:
    """The first rejected records with their reasons, and how many more there were."""
    for sample in samples:
        err.print(f"  {sample}", markup=False)
    if rejected > len(samples):
        err.print(f"  ... and {rejected - len(samples)} more")


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Progress]:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, disable=not sys.stderr.isatty(), transient=False) as bar:
        bar.add_task(description, total=total)
        yield bar


def why(evidence: Any) -> str:
    """Evidence as a sentence: ``spend >= 1000 (spend=1500)``; an upload names its line."""
    if not isinstance(evidence, dict):
        return plain(evidence)
    if "imported" in evidence:
        return (
            f"imported from {evidence['imported']}:{evidence.get('line')} at {evidence.get('at')}"
        )
    head = evidence.get("rule") or evidence.get("value")
    if head is None:
        return plain(evidence)
    values = ", ".join(f"{k}={plain(v)}" for k, v in evidence.get("values", {}).items())
    return f"{head} ({values})" if values else str(head)


def plain(value: Any) -> str:
    """A value for people: JSON, with floats at 12 significant digits (a sum of prices is
    1111.64, not 1111.6399999999999)."""
    return orjson.dumps(_rounded(value), default=str).decode()


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
