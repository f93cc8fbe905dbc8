"""Definitions put in force by one process (`Runtime.reload`) reach the others
(`Runtime.refresh`), and only when the files are the ones put in force."""

from __future__ import annotations

from pathlib import Path

from tagloop.runtime import Runtime
from tagloop.workspace.tagfile import set_rule


def edit(workspace: Path, rule: str) -> None:
    path = workspace / "tags" / "tags.yaml"
    path.write_text(set_rule(path.read_text("utf-8"), "tags.yaml", "VIP", rule), "utf-8")


def version(rt: Runtime, tag: str) -> int:
    return next(a.version for a in rt.active if a.name == tag)


def test_another_process_takes_in_the_reloaded_definitions(workspace: Path) -> None:
    committer, reader = Runtime.open(workspace), Runtime.open(workspace)
    try:
        assert not reader.refresh(force=True)  # nothing new
        edit(workspace, "spend >= 10")
        # Files edited by hand are not taken in by readers until they are put in force.
        assert not reader.refresh(force=True)
        result = committer.reload()
        assert [t.name for t in result.new_versions] == ["VIP"]
        assert reader.refresh(force=True)
        assert version(reader, "VIP") == 2
        assert reader.engine is not None and reader.ingestor.engine is reader.engine
        assert reader.workspace.tags["VIP"].spec.rule == "spend >= 10"
        # Edited again by hand after being put in force: the reader keeps what is in force.
        edit(workspace, "spend >= 20")
        assert not reader.refresh(force=True)
        assert reader.workspace.tags["VIP"].spec.rule == "spend >= 10"
    finally:
        committer.close()
        reader.close()
