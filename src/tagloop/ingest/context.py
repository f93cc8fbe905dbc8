"""What a format parser needs to know about the request it is parsing."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ParseContext:
    received_at: int  # epoch µs; the default event time
    timezone: ZoneInfo  # naive times are read in the workspace time zone
    source: str  # "api", "segment", "cloudevents", "file:orders" ...
    user_entity: str = "customer"  # Segment: the entity type of userId/anonymousId
    group_entity: str = "account"  # Segment: the entity type of groupId
