"""The documentation is executable: its examples run, and it covers every hook, setting
and command. A docs change that breaks an example, or code that adds a hook or setting
without documenting it, fails here."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from tagloop import hookspecs
from tagloop.cli import build
from tagloop.workspace import load_workspace
from tagloop.workspace.models import ProjectFile

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of ``page``."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text("utf-8"))]


def tagged(kind: str) -> list[Any]:
    return [
        pytest.param(body, id=f"{page.name}#{index}")
        for page in PAGES
        for index, (info, body) in enumerate(blocks(page))
        if info == kind
    ]


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(i == "python test" for i, _ in blocks(p))],
    ids=lambda p: p.name,
)
def test_python_examples_run(page: Path) -> None:
    """The ``python test`` blocks of a page run in order in one namespace, as a reader
    follows them: a later block may use what an earlier one defined."""
    module = types.ModuleType("docs_example")
    sys.modules[module.__name__] = module
    try:
        for index, (info, code) in enumerate(blocks(page)):
            if info == "python test":
                name = f"{page.name}, block {index}"
                exec(compile(code, name, "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if any(i.startswith("yaml file=") for i, _ in blocks(p))],
    ids=lambda p: p.name,
)
def test_yaml_examples_form_a_valid_workspace(page: Path, tmp_path: Path) -> None:
    (tmp_path / "tagloop.yaml").write_text("name: docs\n", encoding="utf-8")
    for info, body in blocks(page):
        if info.startswith("yaml file="):
            path = tmp_path / info.split("=", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
    workspace = load_workspace(tmp_path)
    assert workspace.tags and workspace.entity_types


@pytest.mark.parametrize("body", tagged("json event"))
def test_documented_events_are_accepted(
    body: str, client: TestClient, admin: dict[str, str]
) -> None:
    response = client.post(
        "/v1/events", content=body.encode(), headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("body", tagged("json cloudevent"))
def test_documented_cloudevents_are_accepted(
    body: str, client: TestClient, admin: dict[str, str]
) -> None:
    response = client.post(
        "/v1/events",
        content=body.encode(),
        headers={**admin, "Content-Type": "application/cloudevents+json"},
    )
    assert response.status_code == 200, response.text


def test_documented_rejections_are_what_the_api_says(
    client: TestClient, admin: dict[str, str]
) -> None:
    page = ROOT / "docs" / "ingestion.md"
    found = blocks(page)
    checked = 0
    for index, (info, body) in enumerate(found):
        if info != "json rejected":
            continue
        documented = orjson.loads(found[index + 1][1].split("\n", 1)[1])
        response = client.post(
            "/v1/events",
            content=body.encode(),
            headers={**admin, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json() == documented
        checked += 1
    assert checked


def test_every_hook_is_documented() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    hooks = [name for name in dir(hookspecs) if name.startswith("tagloop_")]
    assert hooks
    for name in hooks:
        assert f"### `{name}(" in text, f"hook {name} is not documented in docs/plugins.md"


def settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += settings(annotation, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "workspace.md").read_text("utf-8")
    for key in settings(ProjectFile):
        assert f"| `{key}` |" in text, f"setting {key} is not in docs/workspace.md"


def test_every_command_is_documented() -> None:
    import typer

    text = (ROOT / "docs" / "cli.md").read_text("utf-8")
    app = build()

    def name(command: Any) -> str:
        return str(command.name or command.callback.__name__.replace("_", "-"))

    names = [name(c) for c in app.registered_commands]
    names += [
        f"{g.name} {name(c)}"
        for g in app.registered_groups
        for c in g.typer_instance.registered_commands
    ]  # type: ignore[union-attr]
    assert len(names) > 5 and isinstance(app, typer.Typer)
    for name in names:
        assert f"`tagloop {name}" in text, f"command {name!r} is not in docs/cli.md"


def test_links_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_starts_with_the_two_commands() -> None:
    first_block = blocks(ROOT / "README.md")[0][1]
    assert first_block.splitlines()[0].startswith("make run")
    assert first_block.splitlines()[1].startswith("make test")


@pytest.mark.slow
def test_readme_tour_works_as_written(tmp_path: Path) -> None:
    from tagloop.demo import SAMPLE
    from tests.cli.test_serve import TAGLOOP, Served

    demo = tmp_path / "demo-workspace"
    subprocess.run(
        [TAGLOOP, "demo", str(demo), "--data", str(SAMPLE)], check=True, capture_output=True
    )
    (tour,) = [body for info, body in blocks(ROOT / "README.md") if info == "bash tour"]
    served = Served(demo)
    try:
        script = (
            tour.replace("http://127.0.0.1:8000", served.url)
            .replace("-w demo-workspace", f"-w {demo}")
            .replace(".venv/bin/tagloop", TAGLOOP)
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        served.stop()
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert '"name":"海外客户"' in out  # the catalogue
    assert '"id":"12347"' in out  # the retailer's customer
    assert '"accepted":2' in out and '"duplicates":1' in out  # batch, then idempotent resend
    assert '"tag":"海外客户"' in out and '"values":{"country":"China"}' in out
    assert "tag 价值等级" in out and "sum(order.amount, 365d) = " in out  # explain
    assert "unknown entity type 'custmer' (did you mean 'customer'?)" in out
    assert "customer C-9001" in out  # the CLI's view
