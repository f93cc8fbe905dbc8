"""Every extension point of tagloop, in one place (pluggy hook specifications).

Built-in behaviour registers through these same hooks (see `tagloop.plugins.BUILTINS`);
third-party packages register a module under the ``tagloop`` entry point group. Each hook is
documented in docs/plugins.md, and a test fails when one is not.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from tagloop.flows.actions.base import Action
    from tagloop.ingest.formats import IngestFormat
    from tagloop.sources.base import SourceKind

hookspec = pluggy.HookspecMarker("tagloop")
hookimpl = pluggy.HookimplMarker("tagloop")


@hookspec
def tagloop_ingest_formats() -> list[IngestFormat]:
    """Event formats accepted by ``POST /v1/events``, chosen by the request's Content-Type.

    Return `tagloop.ingest.formats.IngestFormat` objects. Built in: canonical JSON/NDJSON
    and CloudEvents 1.0 structured mode.
    """


@hookspec
def tagloop_api_routers() -> list[APIRouter]:
    """FastAPI routers to mount on the API server. Every built-in endpoint comes from here."""


@hookspec
def tagloop_cli_commands(app: typer.Typer) -> None:
    """Add commands or command groups to the ``tagloop`` command line."""


@hookspec
def tagloop_source_kinds() -> list[SourceKind]:
    """Kinds of source (``kind:`` in ``sources/*.yaml``): `tagloop.sources.base.PullSource`
    or `tagloop.sources.base.StreamSource` subclasses, each with its ``kind`` name and its
    ``config_model``. Built in: ``file``, ``sql``, ``rest``, ``nats``, ``rabbitmq``,
    ``mqtt``, ``redis``, ``kafka``.
    """


@hookspec
def tagloop_flow_actions() -> list[type[Action]]:
    """Actions flows can run (``actions:`` in ``flows/*.yaml``): `tagloop.flows.actions.base.
    Action` subclasses, each with its ``name``, its ``Args`` model and ``run``. Built in:
    ``webhook``, ``notify``, ``create_work_order``, ``set_attribute``, ``set_priority``,
    ``add_tag``, ``remove_tag``, ``start_process``, ``emit_event``.
    """


@hookspec
def tagloop_start_process(
    process: str, entity_type: str, entity_id: str, inputs: dict[str, Any], idempotency_key: str
) -> dict[str, Any] | None:
    """Start the collaboration process ``process`` for an entity (the ``start_process``
    flow action); return what was started (JSON-able, e.g. ``{"process_id": ...}``) or None
    when this plugin does not know the process. ``idempotency_key`` is the same for every
    retry of one step of one run: start at most one process per key.
    """
