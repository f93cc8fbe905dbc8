"""Every extension point of tagloop, in one place (pluggy hook specifications).

Built-in behaviour registers through these same hooks (see `tagloop.plugins.BUILTINS`);
third-party packages register a module under the ``tagloop`` entry point group. Each hook is
documented in docs/plugins.md, and a test fails when one is not.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

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
