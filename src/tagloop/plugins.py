"""The plugin manager: built-in plugins first, then the ``tagloop`` entry point group."""

from __future__ import annotations

import importlib
from functools import cache

import pluggy

from tagloop import hookspecs

# Built-in plugins, registered exactly like third-party ones.
BUILTINS = (
    "tagloop.ingest.formats",
    "tagloop.api.routers",
    "tagloop.cli.commands",
    "tagloop.sources.kinds",
    "tagloop.flows.actions.builtin",
)


@cache
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("tagloop")
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints("tagloop")
    return pm
