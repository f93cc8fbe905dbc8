"""The registry of source kinds, and the built-in ones registered through the plugin hook.

>>> sorted(kinds())[:3]
['file', 'kafka', 'mqtt']
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tagloop.hookspecs import hookimpl
from tagloop.sources.base import SourceKind


@hookimpl
def tagloop_source_kinds() -> list[SourceKind]:
    # Imported here: the broker clients are not needed to load a workspace without them.
    from tagloop.sources import brokers
    from tagloop.sources.file_source import FileSource
    from tagloop.sources.rest import RestSource
    from tagloop.sources.sql import SqlSource
    from tagloop.sources.webhook import WebhookSource

    return [FileSource, SqlSource, RestSource, WebhookSource, *brokers.kinds().values()]


@cache
def kinds() -> dict[str, SourceKind]:
    """Every registered kind by name (plugins included)."""
    from tagloop.plugins import manager

    found: dict[str, SourceKind] = {}
    for group in manager().hook.tagloop_source_kinds():
        for kind in group:
            found[kind.kind] = kind
    return found


def build(name: str, kind: str, config: Any) -> Any:
    """An instance of the kind, for the source ``name`` with its validated config."""
    return kinds()[kind](name, config)
