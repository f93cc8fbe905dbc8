"""Loading a workspace folder: every file validated, every problem reported, nothing half-loaded.

`load_workspace` reads ``tagloop.yaml``, ``entities/``, ``tags/`` (YAML, and SQL rules in
``tags/*.sql``), ``sources/``, ``actions/`` (action aliases), ``flows/`` and ``models/``,
validates each file with pydantic, cross-checks references between files, compiles every
tag rule (and every flow and model) against the dictionary, and either returns a complete
`Workspace` or raises one `WorkspaceError` listing each problem as ``file:line:col:
message``.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from tagloop.errors import Problem, WorkspaceError
from tagloop.names import suggest
from tagloop.workspace.flows import ActionAliasSpec, FlowSpec
from tagloop.workspace.modelfiles import compile_models
from tagloop.workspace.models import EntityTypeSpec, ModelSpec, ProjectFile, SourceSpec, TagSpec
from tagloop.workspace.sources import check_source
from tagloop.workspace.sqltags import read_sql_tags
from tagloop.workspace.tags import TagSource, compile_tags
from tagloop.workspace.workspace import Workspace
from tagloop.workspace.yamlfile import PathKey, Positions, YamlSyntaxError, load_yaml

PROJECT_FILE = "tagloop.yaml"
M = TypeVar("M", bound=BaseModel)
N = TypeVar("N", bound="_Named")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def load_workspace(root: str | os.PathLike[str]) -> Workspace:
    """Load and validate the workspace at ``root``; raise `WorkspaceError` on any problem."""
    return _Loader(Path(root)).load()


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.digest = hashlib.sha256()
        self.dictionary_complete = True
        # items that failed validation, by folder: their names still exist for other files
        self.invalid_names: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def load(self) -> Workspace:
        if not (self.root / PROJECT_FILE).is_file():
            raise WorkspaceError(
                f"{self.root} is not a tagloop workspace: {PROJECT_FILE} is missing "
                f"(create one with `tagloop init {self.root}`)"
            )
        project = self._one(PROJECT_FILE, ProjectFile)
        entities = list(self._many("entities", EntityTypeSpec))
        # With a broken entity file, "unknown entity type" complaints elsewhere would be
        # noise: the real problem is already reported.
        self.dictionary_complete = not self.problems
        tag_items = list(self._many("tags", TagSpec))
        names = [spec.name for spec, _, _ in entities]
        sql_tags = read_sql_tags(
            self.root, names, self.dictionary_complete, self.digest.update, self.problems.append
        )
        tag_items += [(tag.spec, tag.positions, tag.path) for tag in sql_tags]
        # SQL rules come parsed, with spans into their .sql file: keep them for compiling.
        trees = {(tag.positions.file, tag.path): tag.trees for tag in sql_tags}
        source_items = list(self._many("sources", SourceSpec))
        alias_items = list(self._many("actions", ActionAliasSpec))
        flow_items = list(self._many("flows", FlowSpec))
        model_items = list(self._many("models", ModelSpec))
        if project is None:
            raise self._failure()

        entity_specs = self._unique("entity type", entities)
        workspace = Workspace(
            root=self.root,
            project=project,
            entity_types=[spec for spec, _, _ in entity_specs.values()],
            revision=self.digest.hexdigest()[:16],
        )
        models = self._unique("model", model_items)
        # Known before the tags compile: a tag rule may read score('churn'). A model file
        # with a problem still names its model: rules reading it are not errors of their own.
        workspace.model_entities.update(
            {
                str(raw["name"]): str(raw["entity"])
                for raw in self.invalid_names["models"]
                if isinstance(raw.get("name"), str) and isinstance(raw.get("entity"), str)
            }
        )
        workspace.model_entities.update({name: m[0].entity for name, m in models.items()})
        sources = [
            TagSource(spec, pos, path, trees.get((pos.file, path)))
            for spec, pos, path in self._unique("tag", tag_items).values()
        ]
        workspace.tags.update(
            compile_tags(workspace, sources, self.problems.append, self.dictionary_complete)
        )
        workspace.models.update(
            compile_models(
                workspace, list(models.values()), self.problems.append, self.dictionary_complete
            )
        )
        for source, pos, path in self._unique("source", source_items).values():
            self._check_source(workspace, source, pos, path)
        if self.dictionary_complete:
            self._check_flows(workspace, alias_items, flow_items)
        if self.problems:
            raise self._failure()
        return workspace

    def _failure(self) -> WorkspaceError:
        self.problems.sort(key=_location_key)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return WorkspaceError(f"workspace {self.root} has {count} {noun}", self.problems)

    # -- files --------------------------------------------------------------------------
    def _read(self, path: Path) -> tuple[Any, Positions] | None:
        display = path.relative_to(self.root).as_posix()
        try:
            self.digest.update(display.encode() + b"\0" + path.read_bytes() + b"\0")
            return load_yaml(path, display)
        except YamlSyntaxError as exc:
            self.problems.append(Problem(exc.where, exc.problem))
        except OSError as exc:
            self.problems.append(Problem(display, f"cannot read: {exc.strerror}"))
        return None

    def _one(self, name: str, model: type[M]) -> M | None:
        loaded = self._read(self.root / name)
        if loaded is None:
            return None
        data, positions = loaded
        return self._validate(model, data or {}, positions, prefix=())

    def _many(self, folder: str, model: type[M]) -> Iterator[tuple[M, Positions, PathKey]]:
        """Items of every YAML file in ``folder``: a file holds a list under the key
        ``folder`` or a single item at its top level. Items are validated one by one so a
        bad item does not hide the problems of its neighbours."""
        directory = self.root / folder
        if not directory.is_dir():
            return
        paths = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
        for path in paths:
            loaded = self._read(path)
            if loaded is None:
                continue
            data, positions = loaded
            for item, item_path in self._items(folder, data, positions):
                parsed = self._validate(model, item, positions, prefix=item_path)
                if parsed is not None:
                    yield parsed, positions, item_path
                elif isinstance(item, dict):
                    self.invalid_names[folder].append(item)

    def _items(self, folder: str, data: Any, positions: Positions) -> list[tuple[Any, PathKey]]:
        if data is None:
            return []
        singular = folder.removesuffix("s")  # `flow:` holding one flow, as platforms write it
        if isinstance(data, dict) and len(data) == 1 and isinstance(data.get(singular), dict):
            return [(data[singular], (singular,))]
        if isinstance(data, dict) and folder not in data:
            return [(data, ())]
        if isinstance(data, dict) and len(data) == 1 and isinstance(data[folder], list):
            return [(item, (folder, i)) for i, item in enumerate(data[folder])]
        self.problems.append(
            Problem(
                positions.locate(()),
                f"expected one item with a 'name' key, or a list under '{folder}:'",
            )
        )
        return []

    def _validate(
        self, model: type[M], data: Any, positions: Positions, prefix: PathKey
    ) -> M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                where = (
                    positions.locate_key if error["type"] == "extra_forbidden" else positions.locate
                )((*prefix, *loc))
                self.problems.append(Problem(where, _message(model, loc, error)))
            return None

    # -- cross-file checks --------------------------------------------------------------
    def _unique(
        self, what: str, items: list[tuple[N, Positions, PathKey]]
    ) -> dict[str, tuple[N, Positions, PathKey]]:
        seen: dict[str, tuple[N, Positions, PathKey]] = {}
        for spec, positions, path in items:
            if spec.name in seen:
                _, first_pos, first_path = seen[spec.name]
                self.problems.append(
                    Problem(
                        positions.locate((*path, "name")),
                        f"{what} {spec.name!r} is already defined at "
                        f"{first_pos.locate((*first_path, 'name'))}",
                    )
                )
                continue
            seen[spec.name] = (spec, positions, path)
        return seen

    def _check_flows(
        self,
        workspace: Workspace,
        alias_items: list[tuple[ActionAliasSpec, Positions, PathKey]],
        flow_items: list[tuple[FlowSpec, Positions, PathKey]],
    ) -> None:
        from tagloop.flows.definitions import FlowCompiler, Located
        from tagloop.flows.registry import actions

        known = actions()
        aliases = {}
        for alias, pos, path in self._unique("action", alias_items).values():
            if alias.name in known:
                self.problems.append(
                    Problem(
                        pos.locate((*path, "name")),
                        f"{alias.name!r} is a built-in action: an alias needs another name",
                    )
                )
                continue
            aliases[alias.name] = Located(alias, pos, path)
        compiler = FlowCompiler(workspace, known, aliases, self.problems.append)
        for spec, pos, path in self._unique("flow", flow_items).values():
            flow = compiler.compile(Located(spec, pos, path))
            if flow is not None:
                workspace.flows[flow.name] = flow

    def _check_source(
        self, workspace: Workspace, spec: SourceSpec, positions: Positions, path: PathKey
    ) -> None:
        checked = check_source(
            workspace,
            spec,
            positions,
            path,
            lambda model, data, pos, prefix: self._validate(model, data, pos, prefix),
            self.problems.append,
            self.dictionary_complete,
        )
        if checked is not None:
            workspace.sources[spec.name] = checked


def _message(model: type[BaseModel], loc: tuple[Any, ...], error: Any) -> str:
    """A pydantic error rewritten for people: names the key and suggests fixes."""
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        return f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), known)}" + (
            f" (allowed: {', '.join(known)})" if known else ""
        )
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if loc else message


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` within ``model``, following list and dict annotations."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(part, str) and part in current.model_fields:
                current = current.model_fields[part].annotation
                continue
            return []
        current = _element(current)
        if current is None:
            return []
    current = _element(current) if not _is_model(current) else current
    return list(current.model_fields) if _is_model(current) else []


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _element(annotation: Any) -> Any:
    """The model inside ``list[M]``, ``dict[str, M]`` or ``M | None``."""
    if _is_model(annotation):
        return annotation
    for arg in reversed(get_args(annotation)):
        found = _element(arg)
        if found is not None:
            return found
    return None


def _location_key(problem: Problem) -> tuple[str, int, int]:
    file, _, rest = problem.where.partition(":")
    line, _, col = rest.partition(":")
    return (file, int(line) if line.isdigit() else 0, int(col) if col.isdigit() else 0)
