"""Masking of personal data (fields declared ``pii: true``) in API responses.

A principal without ``pii:read`` gets ``"***"`` in place of every PII value that is not
null: in profile attributes, in the attributes and properties of events, in the values a
tag's evidence shows and in the values of tags computed from PII attributes. The key stays,
so a client can tell "masked" from "absent". A principal with ``pii:read`` gets the values,
and the read is written to the audit log (``pii.read``) by the endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tagloop.audit import Actor, record
from tagloop.store.db import Database
from tagloop.workspace import Workspace

MASK = "***"

# Names in an evidence key such as ``name``, ``last(order.email)`` or ``days_since(signup)``.
_NAME = re.compile(r"[^\W\d][\w]*(?:\.[^\W\d][\w]*)?")


class Redactor:
    """Masks (or, with ``reveal``, passes) PII in rendered payloads, remembering which PII
    fields were present so that a revealing read can be audited."""

    def __init__(self, workspace: Workspace, *, reveal: bool) -> None:
        self.workspace = workspace
        self.reveal = reveal
        self.seen: set[str] = set()  # "customer.name", "order.email" ...

    def attribute_fields(self, entity_type: str) -> frozenset[str]:
        found = self.workspace.dictionary.get(entity_type)
        return found.pii_fields if found is not None else frozenset()

    def property_fields(self, entity_type: str, event_type: str) -> frozenset[str]:
        found = self.workspace.dictionary.get(entity_type)
        spec = found.spec.events.get(event_type) if found is not None else None
        if spec is None:
            return frozenset()
        return frozenset(name for name, f in spec.properties.items() if f.pii)

    def _values(self, values: Any, fields: Iterable[str], prefix: str) -> Any:
        if not isinstance(values, dict):
            return values
        hit = [f for f in fields if values.get(f) is not None]
        if not hit:
            return values
        self.seen.update(f"{prefix}.{f}" for f in hit)
        return values if self.reveal else {**values, **dict.fromkeys(hit, MASK)}

    def _sensitive(self, entity_type: str, text: str) -> bool:
        """Whether an evidence key (a rule's text) reads a PII attribute or property."""
        attributes = self.attribute_fields(entity_type)
        for name in _NAME.findall(text):
            head, _, tail = name.partition(".")
            if not tail and head in attributes:
                return True
            if tail and (
                tail in self.property_fields(entity_type, head)
                or tail in self.attribute_fields(head)
            ):
                return True
        return False

    def _mask(self, entity_type: str, label: str, value: Any) -> Any:
        if value is None:
            return None
        self.seen.add(f"{entity_type}.{label}")
        return value if self.reveal else MASK

    def evidence(self, entity_type: str, evidence: Any) -> Any:
        if not isinstance(evidence, dict) or not isinstance(evidence.get("values"), dict):
            return evidence
        return {**evidence, "values": self.evaluated(entity_type, evidence["values"])}

    def evaluated(self, entity_type: str, values: dict[str, Any]) -> dict[str, Any]:
        """The values a rule looked at, keyed by their text."""
        return {
            key: self._mask(entity_type, key, value) if self._sensitive(entity_type, key) else value
            for key, value in values.items()
        }

    def _tag_reads_pii(self, tag: str) -> bool:
        definition = self.workspace.tags.get(tag)
        if definition is None or definition.value is None:
            return False
        return bool(definition.value.deps.attributes & self.attribute_fields(definition.entity))

    def tag_value(self, entity_type: str, tag: str, value: Any) -> Any:
        return self._mask(entity_type, f"tag:{tag}", value) if self._tag_reads_pii(tag) else value

    # Rendered payloads (tagloop.api.render), masked in place of a copy.

    def entity(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = self.attribute_fields(body["type"])
        return {**body, "attributes": self._values(body["attributes"], fields, body["type"])}

    def event(self, body: dict[str, Any]) -> dict[str, Any]:
        entity_type = body["entity"]["type"]
        properties = self.property_fields(entity_type, body["type"])
        return {
            **body,
            "attributes": self._values(
                body["attributes"], self.attribute_fields(entity_type), entity_type
            ),
            "properties": self._values(body["properties"], properties, body["type"]),
        }

    def assignment(self, entity_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            **body,
            "value": self.tag_value(entity_type, body["tag"], body["value"]),
            "evidence": self.evidence(entity_type, body["evidence"]),
        }

    def tag_change(self, entity_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            **body,
            "value": self.tag_value(entity_type, body["tag"], body["value"]),
            "previous": self.tag_value(entity_type, body["tag"], body["previous"]),
        }

    def explanation(self, body: dict[str, Any]) -> dict[str, Any]:
        entity_type, tag = body["entity"]["type"], body["tag"]
        stored = body["assignment"]
        if stored is not None:
            stored = {
                **stored,
                "value": self.tag_value(entity_type, tag, stored["value"]),
                "evidence": self.evidence(entity_type, stored["evidence"]),
            }
        now = {
            **body["now"],
            "value": self.tag_value(entity_type, tag, body["now"]["value"]),
            "values": self.evaluated(entity_type, body["now"]["values"]),
        }
        return {**body, "assignment": stored, "now": now}


class TraceRedactor:
    """Masks, in a flow run's trace, the PII values of the run's entities and event
    wherever they appear: a template may have put a customer's name or phone number into a
    message, a webhook's body or an error, where no field says it is personal.

    >>> redact = TraceRedactor(reveal=False)
    >>> redact.know("customer.name", "张三")
    >>> redact.value({"text": "客户 张三 下单", "amount": 1288})
    {'text': '客户 *** 下单', 'amount': 1288}
    >>> sorted(redact.seen)
    ['customer.name']
    """

    SHORTEST = 2  # characters: a shorter value would mask unrelated text

    def __init__(self, *, reveal: bool) -> None:
        self.reveal = reveal
        self.seen: set[str] = set()
        self._known: dict[str, str] = {}  # the value's text -> its label

    def know(self, label: str, value: Any) -> None:
        """Remember ``value`` (of the PII field ``label``) to mask it."""
        if isinstance(value, bool) or value is None:
            return
        text = str(value)
        if len(text) >= self.SHORTEST:
            self._known.setdefault(text, label)

    def know_fields(self, entity_type: str, values: Any, fields: Iterable[str]) -> None:
        if isinstance(values, dict):
            for name in fields:
                self.know(f"{entity_type}.{name}", values.get(name))

    def know_run(
        self,
        workspace: Workspace,
        entity_type: str,
        scope: Mapping[str, Any] | None,
        profiles: Mapping[tuple[str, str], Any],
    ) -> None:
        """Remember what a run could have put into its arguments, results and errors:
        the PII attributes of its entities (``profiles``: their rows) and the PII of its
        triggering event (in its ``scope``)."""
        dictionary = workspace.dictionary
        for (kind, _), profile in profiles.items():
            found = dictionary.get(kind)
            if found is not None:
                self.know_fields(kind, profile.attributes, found.pii_fields)
        event = (scope or {}).get("event") or {}
        own = dictionary.get(entity_type)
        if own is None or not event:
            return
        event_type = str(event.get("type"))
        spec = own.spec.events.get(event_type)
        if spec is not None:
            personal = [name for name, f in spec.properties.items() if f.pii]
            self.know_fields(event_type, event.get("properties"), personal)
        self.know_fields(entity_type, event.get("attributes"), own.pii_fields)

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            label = self._known.get(str(value))
            if label is not None:
                self.seen.add(label)
                return value if self.reveal else MASK
        return value

    def _text(self, text: str) -> str:
        # Longest first: a phone number is not left half-masked by a shorter value in it.
        for known in sorted(self._known, key=len, reverse=True):
            if known in text:
                self.seen.add(self._known[known])
                if not self.reveal:
                    text = text.replace(known, MASK)
        return text


def audit_read(
    db: Database,
    actor: Actor,
    redactor: Redactor | TraceRedactor,
    entity_type: str,
    target_id: str,
) -> None:
    """Record that a principal with ``pii:read`` was shown PII (nothing if none was
    shown). Written before the response leaves: an unrecorded read fails instead.

    Committed without waiting for the disk (``durable=False``): a read changes nothing,
    and waiting for an fsync per read would triple its latency. The record survives a
    crash of the server; a power cut can lose the last reads' records, never a record
    of a change, since the log is flushed in order."""
    if not redactor.reveal or not redactor.seen:
        return
    with db.write(durable=False) as conn:
        record(
            db,
            conn,
            actor=actor,
            action="pii.read",
            target_type=entity_type,
            target_id=target_id,
            after={"fields": sorted(redactor.seen)},
        )
