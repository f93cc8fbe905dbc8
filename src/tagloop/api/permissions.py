"""Roles, the permissions they grant, and what a principal may see: the one place where
access rules are written down (docs/security.md renders the same table).

A principal (an API key or a signed-in user) holds one or more roles, optionally the extra
grant ``pii:read``, and optionally a list of entity types it is restricted to. Everything
of another entity type answers exactly as if it did not exist (404, with "did you mean"
suggestions and lists of known names drawn only from what the principal may see), so a
restricted key cannot probe for other types, entities or tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tagloop.dictionary import Dictionary
from tagloop.errors import NotFound
from tagloop.ingest.event import Batch
from tagloop.names import suggest
from tagloop.workspace import Workspace

# Reading: every role but ingest reads what the platform holds.
READ = frozenset(
    {
        "entities:read",
        "tags:read",
        "flows:read",
        "sources:read",
        "models:read",
        "reviews:read",
        "workorders:read",
        "processes:read",
        "metrics:read",
    }
)

ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),  # every permission, pii:read and identity management included
    "editor": READ | {"tags:write", "flows:write", "sources:write", "models:write"},
    "reviewer": READ | {"reviews:write"},
    "operator": READ | {"workorders:write", "processes:write", "replays:write"},
    "viewer": READ,
    # What the Segment write key and source push endpoints use: nothing can be read with it.
    "ingest": frozenset({"events:write"}),
}

PII_READ = "pii:read"
# Grants that are not roles of their own but may be added to any role list.
GRANTS: dict[str, frozenset[str]] = {PII_READ: frozenset({PII_READ})}

# Any valid credential passes (signing out, "who am I").
AUTHENTICATED = "authenticated"
# Managing keys and users; only unrestricted principals hold it (see `Principal.can`).
ADMIN = "admin"
# Permissions that only the admin role holds (through "*").
ADMIN_ONLY = frozenset({ADMIN, "audit:read"})


def assignable() -> list[str]:
    """What ``--role`` and the admin API accept: the roles, then the extra grants."""
    return [*ROLES, *GRANTS]


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles as a list, or a ValueError naming the unknown ones.

    >>> check_roles(["viewer", "pii:read"])
    ['viewer', 'pii:read']
    """
    listed = list(dict.fromkeys(roles))
    unknown = [r for r in listed if r not in ROLES and r not in GRANTS]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles: {', '.join(assignable())}")
    if not any(r in ROLES for r in listed):
        raise ValueError(f"at least one role is needed: {', '.join(ROLES)}")
    return listed


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key (``kind="key"``) or a signed-in user (``kind="user"``)."""

    key_id: str  # the key's or the user's id
    name: str  # key name or username
    roles: tuple[str, ...]
    entity_types: frozenset[str] | None = None  # None: every entity type
    kind: str = "key"
    limits: Any = None  # a key's own rate limit (``api_keys.limits``), if it has one

    def permissions(self) -> frozenset[str]:
        granted: set[str] = set()
        for role in self.roles:
            granted |= ROLES.get(role, GRANTS.get(role, frozenset()))
        return frozenset(granted)

    def can(self, permission: str) -> bool:
        """
        >>> Principal("k", "k", ("viewer",)).can("tags:read")
        True
        >>> Principal("k", "k", ("admin",), frozenset({"shipment"})).can("admin")
        False
        """
        if permission == AUTHENTICATED:
            return True
        if permission in ADMIN_ONLY and self.entity_types is not None:
            # A restricted administrator could otherwise mint itself an unrestricted key,
            # or read other types' ids and values in the audit log.
            return False
        granted = self.permissions()
        return "*" in granted or permission in granted

    @property
    def reads_pii(self) -> bool:
        return self.can(PII_READ)

    def can_see(self, entity_type: str) -> bool:
        return self.entity_types is None or entity_type in self.entity_types

    def visible(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.can_see(n)]


def unknown_type(dictionary: Dictionary, principal: Principal, name: str) -> str:
    """The 404 message for an entity type the principal does not know or may not see: the
    same words either way, naming only types it may see."""
    if principal.entity_types is None:
        return dictionary.unknown(name)
    visible = principal.visible(sorted(dictionary.types))
    known = ", ".join(visible) or "none declared"
    return f"unknown entity type {name!r}{suggest(name, visible)} (known: {known})"


def restrict_batch(batch: Batch, dictionary: Dictionary, principal: Principal) -> None:
    """Refuse the events of a batch that name an entity type (primary or related) the
    principal may not see, exactly as an unknown type is refused."""
    if principal.entity_types is None:
        return
    kept = []
    for index, event in batch.events:
        hidden = (
            [("entity.type", event.entity_type)] if not principal.can_see(event.entity_type) else []
        )
        hidden += [(f"related.{t}", t) for t in event.related if not principal.can_see(t)]
        for where, name in hidden:
            batch.reject(index, where, unknown_type(dictionary, principal, name))
        if not hidden:
            kept.append((index, event))
    batch.events = kept


def check_type(workspace: Workspace, principal: Principal, entity_type: str) -> None:
    """404 for an entity type that is not declared or that the principal may not see."""
    if entity_type not in workspace.dictionary or not principal.can_see(entity_type):
        raise NotFound(unknown_type(workspace.dictionary, principal, entity_type))


def check_tag(workspace: Workspace, principal: Principal, name: str) -> None:
    """404 for a tag that is not defined or whose entity type the principal may not see;
    the suggestions name only tags it may see."""
    definition = workspace.tags.get(name)
    if definition is None or not principal.can_see(definition.entity):
        visible = [t.name for t in workspace.tags.values() if principal.can_see(t.entity)]
        raise NotFound(f"unknown tag {name!r}" + suggest(name, visible))
