"""Workspaces: configuration as code, validated with file:line errors."""

from __future__ import annotations

from tagloop.workspace.loader import load_workspace
from tagloop.workspace.workspace import TagDefinition, Workspace

__all__ = ["TagDefinition", "Workspace", "load_workspace"]
