"""Flows (``/flows``): the list, one flow's definition (its YAML file, read-only, and a
diagram of trigger, conditions and steps), its recent and failed runs, a run's trace, and
retrying a failed run through the code of ``POST /v1/flows/runs/{id}/retry`` (audited as
``flow.retry``, permission ``replays:write``)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from tagloop.api.actor import request_actor
from tagloop.api.permissions import Principal
from tagloop.api.routers.flows import _detail, _list, _retry, _runs, visible_flow
from tagloop.console.web import Access, guarded, page, render, submitted
from tagloop.flows.steps import (
    ActionStep,
    Flow,
    IfStep,
    ParallelStep,
    Step,
    WaitStep,
    WaitUntilStep,
)
from tagloop.runtime import Runtime

router = APIRouter(include_in_schema=False)
RUNS = 20


def diagram(flow: Flow) -> list[dict[str, Any]]:  # boxes: kind, label, children
    """The flow as boxes top to bottom: ``{"kind", "label", "children"}``; branches
    (if/else, parallel, on timeout) nest."""

    def steps(items: tuple[Step, ...]) -> list[dict[str, Any]]:
        boxes: list[dict[str, Any]] = []
        for step in items:
            if isinstance(step, ActionStep):
                boxes.append({"kind": "action", "label": step.label, "children": []})
            elif isinstance(step, IfStep):
                boxes.append(
                    {
                        "kind": "if",
                        "label": step.condition.text,
                        "children": [("then", steps(step.then)), ("else", steps(step.otherwise))],
                    }
                )
            elif isinstance(step, WaitStep):
                seconds = step.duration_us // 1_000_000
                boxes.append({"kind": "wait", "label": f"wait {seconds}s", "children": []})
            elif isinstance(step, WaitUntilStep):
                boxes.append(
                    {
                        "kind": "wait",
                        "label": f"wait until {step.condition.text}",
                        "children": [("timeout", steps(step.on_timeout))],
                    }
                )
            elif isinstance(step, ParallelStep):
                boxes.append(
                    {
                        "kind": "parallel",
                        "label": "parallel",
                        "children": [(f"{i + 1}", steps(b)) for i, b in enumerate(step.branches)],
                    }
                )
        return boxes

    return [
        {"kind": "trigger", "label": flow.trigger.describe(), "children": []},
        *({"kind": "condition", "label": c.text, "children": []} for c in flow.conditions),
        *steps(flow.steps),
    ]


def _source(rt: Runtime, flow: Flow) -> str:
    """The flow's YAML file as written (its definition is the file: config as code)."""
    path = FilePath(rt.workspace.root) / flow.file if flow.file else None
    if path is None or not path.is_file():
        return ""
    return path.read_text("utf-8")


@router.get("/flows")
async def flows_page(request: Request, access: Access = page("flows:read")) -> Response:
    """Every flow the principal may see."""
    rt: Runtime = request.app.state.runtime

    def build(principal: Principal) -> Response:
        return render(request, "flows.html", access, flows=_list(rt, principal)["items"])

    return await guarded(request, access, build)


_NO_FILTER = {"status": None, "entity_type": None, "entity_id": None}


@router.get("/flows/{name}")
async def flow_page(
    request: Request, name: str = Path(max_length=255), access: Access = page("flows:read")
) -> Response:
    """One flow: definition, diagram, recent and failed runs."""
    rt: Runtime = request.app.state.runtime

    def build(principal: Principal) -> Response:
        found = visible_flow(rt, principal, name)
        recent = _runs(rt, principal, found.name, _NO_FILTER, RUNS, None)["items"]
        failed = _runs(rt, principal, found.name, {**_NO_FILTER, "status": "failed"}, RUNS, None)
        return render(
            request,
            "flow.html",
            access,
            flow=found,
            source=_source(rt, found),
            boxes=diagram(found),
            runs=recent,
            failed=failed["items"],
        )

    return await guarded(request, access, build)


@router.get("/runs/{run_id}")
async def run_page(
    request: Request, run_id: str = Path(max_length=64), access: Access = page("flows:read")
) -> Response:
    """One run with its trace (PII masked as in ``GET /v1/flows/runs/{id}``)."""
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        run = _detail(rt, (principal, actor), run_id)
        return render(
            request, "run.html", access, run=run, retried=request.query_params.get("retried")
        )

    return await guarded(request, access, build)


@router.post("/runs/{run_id}/retry")
async def retry_page(
    request: Request, run_id: str = Path(max_length=64), access: Access = page("replays:write")
) -> Response:
    """Retry a failed run, then show it (a 409 page if it is not failed)."""
    refused = await submitted(request, access)
    if isinstance(refused, Response):
        return refused
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        _retry(rt, principal, actor, run_id)
        return RedirectResponse(f"/runs/{run_id}?retried=1", status_code=303)

    return await guarded(request, access, build)
