"""Draft rules: a tag's rule as someone edits it, checked, previewed on real entities and
saved as the tag's next version.

A draft is checked exactly as the workspace loader checks a rule (same scope, same binder,
dependency cycles refused), with errors as character spans of the draft for the editor to
underline. `preview` evaluates the draft in the database on the entities of the tag's type
(all of them, or a random sample of a large type) and compares with what they hold now.
`save` writes the rule into the tag's YAML file (`tagloop.workspace.tagfile`) and puts the
workspace's definitions in force: a new version, recomputed, audited as its author.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from tagloop.audit import Actor
from tagloop.engine import batch
from tagloop.engine.plans import ActiveTag
from tagloop.errors import Conflict, NotFound, Unprocessable
from tagloop.names import suggest
from tagloop.rules import RuleError, TagInfo, compile_tree, parse
from tagloop.rules import tree as t
from tagloop.rules.builder import to_builder
from tagloop.rules.sql.expr import Unsupported
from tagloop.rules.tokens import T, tokenize
from tagloop.store import entities as entity_store
from tagloop.store import tags as tag_store
from tagloop.store.tables import entities
from tagloop.workspace import Workspace
from tagloop.workspace.tagfile import write_rule
from tagloop.workspace.tags import references
from tagloop.workspace.workspace import TagDefinition

if TYPE_CHECKING:
    from tagloop.runtime import Runtime

# Entities a preview evaluates; a larger type is sampled (a streak rule over the demo's
# 4,372 customers takes ~1.5 s in SQLite, ~0.25 s on a sample of 1,000; all on demand).
SAMPLE = 1000
EVERY = 1_000_000  # "all of them": what a preview asked to count every entity evaluates
EXAMPLES = 10  # entity ids shown for each kind of change


@dataclass
class Draft:
    """A checked draft of tag ``name``'s rule (``text`` None: no rule, the tag holds
    whenever its value is not null)."""

    name: str
    text: str | None
    definition: TagDefinition
    builder: dict[str, Any] | None


def editable(workspace: Workspace, name: str) -> TagDefinition:
    """The tag, if its rule can be edited here; else why not (404 / 422)."""
    tag = workspace.tags.get(name)
    if tag is None:
        raise NotFound(f"unknown tag {name!r}" + suggest(name, list(workspace.tags)))
    if not tag.computed:
        raise Unprocessable(f"tag {name!r} is imported: its values are uploaded, not computed")
    file = source_file(tag)
    if not file.endswith((".yaml", ".yml")):
        raise Unprocessable(f"tag {name!r} is written as a SQL rule in {file}: edit it there")
    if tag.spec.jsonlogic is not None:
        raise Unprocessable(f"tag {name!r} is written as JsonLogic in {file}: edit it there")
    return tag


def source_file(tag: TagDefinition) -> str:
    """The workspace file a tag is defined in (its location without line and column)."""
    parts = tag.location.rsplit(":", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() else tag.location


def check(workspace: Workspace, name: str, text: str | None) -> Draft:
    """Check ``text`` as tag ``name``'s rule; `RuleError` (a span of ``text``) if it is not
    one. Blank text removes the rule, allowed for a tag with a value expression."""
    tag = editable(workspace, name)
    if text is None or not text.strip():
        if tag.spec.value is None:
            raise RuleError("the rule is empty (this tag has no value to hold instead)", 0, 1)
        spec = tag.spec.model_copy(update={"rule": None})
        return Draft(name, None, TagDefinition(spec, None, tag.value, tag.location), None)
    tree = parse(text)
    _check_cycle(workspace, name, tree)
    infos = {
        other.name: TagInfo(other.entity, other.value_type)
        for other in workspace.tags.values()
        if other.name != name
    }
    compiled = compile_tree(text, tree, workspace.scope(tag.entity, infos), want="boolean")
    spec = tag.spec.model_copy(update={"rule": text})
    definition = TagDefinition(spec, compiled, tag.value, tag.location)
    return Draft(name, text, definition, to_builder(tree))


def _check_cycle(workspace: Workspace, name: str, tree: t.Node) -> None:
    """A draft may not read the tag itself, nor a tag that reads it."""
    # every tag that reads `name`, directly or not (the versions play no part here)
    readers = batch.dependents((ActiveTag(d, 0) for d in workspace.tags.values()), [name])
    for node in tree.walk():
        read = references(node) if isinstance(node, t.Call | t.Method) else set()
        for tag in sorted(read & readers):
            path = "itself" if tag == name else f"{tag!r}, which reads {name!r}"
            raise RuleError(f"the rule would read {path}: a cycle", *node.span)


# -- the editor's view of a draft ---------------------------------------------------------
def error_view(text: str, exc: RuleError) -> dict[str, Any]:
    """An error as the editor shows it: message, span, and 1-based line and column."""
    start = min(exc.start, len(text))
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return {
        "message": exc.message,
        "start": start,
        "end": max(start + 1, min(exc.end, len(text) + 1)),
        "line": line,
        "column": column,
    }


_KINDS = {
    T.NUMBER: "number",
    T.STRING: "string",
    T.DURATION: "duration",
    T.NAME: "name",
    T.KEYWORD: "keyword",
    T.OP: "op",
}


def highlight(text: str) -> list[dict[str, Any]]:
    """Spans of ``text`` by kind, for syntax highlighting; what does not tokenize (from the
    first bad character on) is one ``error`` span, and ``#`` comments are ``comment``.

    >>> [(s["kind"], s["start"], s["end"]) for s in highlight("count(order, 30d) > 'x")]
    [('function', 0, 5), ('op', 5, 6), ('name', 6, 11), ('op', 11, 12), ('duration', 13, 16), \
('op', 16, 17), ('op', 18, 19), ('error', 20, 22)]
    """
    spans: list[dict[str, Any]] = []
    end = len(text)
    try:
        tokens = tokenize(text)
    except RuleError as exc:
        end = exc.start
        tokens = tokenize(text[:end]) if end else []
    tokens = [tok for tok in tokens if tok.kind is not T.EOF]
    for i, tok in enumerate(tokens):
        kind = _KINDS[tok.kind]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == "name" and following is not None and following.is_op("("):
            kind = "function"
        if kind == "keyword" and tok.text in ("true", "false", "null"):
            kind = "constant"
        spans.append({"kind": kind, "start": tok.start, "end": tok.end})
    position = 0
    for span in list(spans):  # comments: '#' to the end of a line, between tokens
        _comments(text, position, span["start"], spans)
        position = span["end"]
    _comments(text, position, end, spans)
    if end < len(text):
        spans.append({"kind": "error", "start": end, "end": len(text)})
    return sorted(spans, key=lambda s: s["start"])


def _comments(text: str, start: int, end: int, spans: list[dict[str, Any]]) -> None:
    at = text.find("#", start, end)
    while at >= 0:
        stop = text.find("\n", at, end)
        stop = end if stop < 0 else stop
        spans.append({"kind": "comment", "start": at, "end": stop})
        at = text.find("#", stop, end)


# -- preview ------------------------------------------------------------------------------
@dataclass
class Preview:
    entity_type: str
    total: int  # entities of the type
    evaluated: int  # entities the draft was evaluated on
    sampled: bool
    holders: int = 0  # of the evaluated, how many the draft gives the tag
    current: int = 0  # of the evaluated, how many hold it now
    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # held before and after, another value

    def as_dict(self) -> dict[str, Any]:
        scale = self.total / self.evaluated if self.sampled and self.evaluated else 1.0
        return {
            "entity_type": self.entity_type,
            "entities": self.total,
            "evaluated": self.evaluated,
            "sampled": self.sampled,
            "holders": self.holders,
            "holders_now": self.current,
            "gained": len(self.gained),
            "lost": len(self.lost),
            "changed": len(self.changed),
            # Estimates for the whole type (exact when nothing was sampled).
            "estimated_holders": round(self.holders * scale),
            "estimated_gained": round(len(self.gained) * scale),
            "estimated_lost": round(len(self.lost) * scale),
            "examples": {
                "gained": self.gained[:EXAMPLES],
                "lost": self.lost[:EXAMPLES],
                "changed": self.changed[:EXAMPLES],
            },
        }


def preview(rt: Runtime, draft: Draft, sample: int = SAMPLE) -> Preview:
    """Evaluate the draft on the type's entities (a random ``sample`` of a larger type)
    at the engine's present, and compare with what they hold now."""
    definition = draft.definition
    entity_type = definition.entity
    with rt.db.read() as conn:
        total = entity_store.count(conn, entity_type)
        ids: list[str] | None = None
        if total > sample:  # chosen in the database: a million ids never reach Python
            chosen = (
                select(entities.c.id)
                .where(entities.c.type == entity_type)
                .order_by(func.random())
                .limit(sample)
            )
            ids = sorted(conn.execute(chosen).scalars())
    result = Preview(entity_type, total, len(ids) if ids is not None else total, ids is not None)
    current_version = next((a.version for a in rt.active if a.name == draft.name), 0)
    drafted = ActiveTag(definition, current_version + 1)
    tags = [
        a
        for a in batch.closure(rt.active, definition.deps.tags)
        if a.definition.entity == entity_type
    ]
    tags = [a for a in tags if a.name != draft.name] + [drafted]
    try:
        values = batch.evaluate(
            batch.fetcher(rt.db),
            batch.dialect_of(rt.db),
            rt.engine,
            entity_type,
            tags,
            rt.clock(),
            ids=ids,
            evidence=False,
        )
    except Unsupported as exc:
        raise Unprocessable(f"this rule cannot be previewed in the database: {exc}") from None
    evaluated = sorted(values)
    with rt.db.read() as conn:
        keys = [(entity_type, i) for i in evaluated]
        held = tag_store.current(rt.db, conn, keys, [draft.name])
    for entity_id in evaluated:
        after = values[entity_id][draft.name]
        before = held.get((entity_type, entity_id, draft.name))
        had = before is not None and before.active
        result.holders += after.held
        result.current += had
        if after.held and not had:
            result.gained.append(entity_id)
        elif had and not after.held:
            result.lost.append(entity_id)
        elif had and before is not None and before.value != after.value:
            result.changed.append(entity_id)
    return result


# -- save ---------------------------------------------------------------------------------
def save(rt: Runtime, draft: Draft, base_version: int | None, actor: Actor) -> dict[str, Any]:
    """Write the draft into its file and put it in force as the tag's next version.

    ``base_version`` is the version the editor started from: if the tag has moved on since,
    nothing is written (`Conflict`). Returns the version in force afterwards."""
    name = draft.name
    current = next((a for a in rt.active if a.name == name), None)
    if current is None:
        raise NotFound(f"unknown tag {name!r}")
    if base_version is not None and base_version != current.version:
        raise Conflict(
            f"tag {name!r} is at version {current.version} now, not {base_version}: "
            "someone saved it meanwhile; reload to see their change"
        )
    if draft.definition.fingerprint == current.definition.fingerprint:
        return {"tag": name, "version": current.version, "changed": False}
    display = source_file(current.definition)
    path = Path(rt.workspace.root) / display
    expected = path.read_text("utf-8")
    write_rule(path, display, name, draft.text, expected)
    try:
        reload_definitions(rt, actor)
    except Exception:
        path.write_text(expected, "utf-8")  # the file as it was: the old version stays
        raise
    after = next(a for a in rt.active if a.name == name)
    return {"tag": name, "version": after.version, "changed": True}


def reload_definitions(rt: Runtime, actor: Actor) -> None:
    """Put the workspace files' definitions in force in the process that commits (the
    writer process under ``tagloop serve``), then in this one."""
    if rt.remote is not None:
        from tagloop.ingest.remote import RemoteWriter

        RemoteWriter(rt.remote).reload(actor)
        rt.refresh(force=True)
    else:
        rt.reload(actor)
