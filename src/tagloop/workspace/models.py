"""The workspace file formats, as pydantic models.

One model per file kind: `ProjectFile` (tagloop.yaml), `EntityFile` (entities/*.yaml),
`TagFile` (tags/*.yaml), `SourceFile` (sources/*.yaml). Unknown keys are errors, so a typo
(`rul:` for `rule:`) is reported instead of silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from tagloop.dictionary.types import SYSTEM_ATTRIBUTES
from tagloop.names import check_label, is_identifier
from tagloop.timeutil import parse_duration, zone

FieldTypeName = Literal[
    "string", "integer", "number", "boolean", "datetime", "date", "object", "list", "any"
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str, what: str) -> str:
    if not is_identifier(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits and underscores, not starting with a digit"
        )
    return value


class SegmentSettings(Strict):
    user_entity: str = "customer"
    group_entity: str = "account"


class IngestSettings(Strict):
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_batch_events: int = Field(default=10_000, gt=0)
    max_event_bytes: int = Field(default=256 * 1024, gt=0)
    max_future: str = "1d"
    segment: SegmentSettings = SegmentSettings()

    @field_validator("max_future")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # One process by default: on SQLite a second process invalidates the first's page
    # cache on every commit, costing more than it gains (docs/benchmarks.md).
    workers: int = Field(default=1, ge=1, le=64)
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / -Proto headers
    # are believed; from anyone else they are ignored, or a client could choose the
    # address that sign-in throttling, rate limits and the audit log see.
    trusted_proxies: list[str] = ["127.0.0.1"]

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class EngineSettings(Strict):
    # How often rules that use now() in a way the timer analysis cannot solve re-evaluate.
    now_tick: str = "1m"
    timer_poll: str = "1s"  # how often due timers are looked for
    # How long a flow worker holds a run it took: a run of a worker that died is taken
    # over after this (docs/flows.md).
    flow_lease: str = "5m"
    # How long finished flow runs (and their traces) are kept; older ones are deleted.
    flow_runs_kept: str = "30d"

    @field_validator("now_tick", "timer_poll", "flow_lease", "flow_runs_kept")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class RateSpec(Strict):
    """A token bucket: ``rate`` requests per second sustained, up to ``burst`` at once."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


# Defaults for an embedded server, chosen so that normal use never meets them and only a
# runaway client does. An ingest key's 100 requests/s in batches of 500 is 50,000 events/s,
# more than one server commits (docs/benchmarks.md), so the server, not the limiter, is
# what bounds a well-behaved sender; what gets slowed is one event per request in a tight
# loop or a retry storm. Reading keys: a script or a dashboard does a few requests per
# second, a page load a few dozen at once, hence 50/s with bursts of 100.
DEFAULT_ROLE_LIMITS: dict[str, RateSpec] = {
    "admin": RateSpec(rate=50, burst=100),
    "viewer": RateSpec(rate=50, burst=100),
    "ingest": RateSpec(rate=100, burst=200),
}


class BodyLimits(Strict):
    # Bodies of every endpoint except event ingestion and tag uploads, which have their
    # own, larger limit (ingest.max_body_bytes).
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Well below orjson's own limit (1024) and Python's recursion limit, so no code that
    # walks a value recursively can be made to fail by nesting.
    max_json_depth: int = Field(default=64, ge=2, le=512)
    # Any array inside a body; the top-level list of events or records of an upload is
    # bounded by its endpoint instead (ingest.max_batch_events, the body size).
    max_array_length: int = Field(default=10_000, ge=1)
    # The whole body must have arrived within this time (408 otherwise): a client that
    # trickles bytes cannot keep a request open.
    read_timeout: str = "60s"

    @field_validator("read_timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("read_timeout must be longer than 0s")
        return value


class LimitSettings(Strict):
    enabled: bool = True
    redis_url: str | None = None  # shared buckets for several server processes
    # Share of a bucket's burst a process takes from Redis in one round trip and spends
    # locally for up to a second (0: one round trip per request, exact).
    redis_lease: float = Field(0.1, ge=0, le=1)
    default: RateSpec = RateSpec(rate=50, burst=100)  # roles not listed under `roles`
    roles: dict[str, RateSpec] = DEFAULT_ROLE_LIMITS
    # Per client address, taken by each request that fails authentication.
    anonymous: RateSpec = RateSpec(rate=1, burst=20)
    bodies: BodyLimits = BodyLimits()

    @field_validator("roles")
    @classmethod
    def _over_defaults(cls, value: dict[str, RateSpec]) -> dict[str, RateSpec]:
        # Listing one role keeps the defaults of the others.
        return {**DEFAULT_ROLE_LIMITS, **value}

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value


DEFAULT_REJECT_REASONS = ["wrong_entity", "outdated", "insufficient_evidence", "duplicate", "other"]


class ReviewSettings(Strict):
    # The reasons a reviewer may give when rejecting (docs/reviews.md): a closed list, so
    # that error rates can be broken down by reason.
    reasons: list[str] = DEFAULT_REJECT_REASONS

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one reason")
        for reason in value:
            if not reason.strip() or len(reason) > 100:
                raise ValueError(f"reason {reason!r} must be 1 to 100 characters")
        if len(set(value)) != len(value):
            raise ValueError("reasons must not repeat")
        return value


class ProjectFile(Strict):
    """``tagloop.yaml``."""

    name: str
    timezone: str = "Asia/Shanghai"
    database: str = "sqlite:///tagloop.db"
    ingest: IngestSettings = IngestSettings()
    server: ServerSettings = ServerSettings()
    engine: EngineSettings = EngineSettings()
    limits: LimitSettings = LimitSettings()
    profile_events: int = Field(default=20, ge=0, le=1000)
    reviews: ReviewSettings = ReviewSettings()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        zone(value)
        return value


class FieldSpec(Strict):
    type: FieldTypeName = "string"
    description: str = ""
    owner: str = ""
    pii: bool = False


class EventSpec(Strict):
    description: str = ""
    properties: dict[str, FieldSpec] = {}


def _expand_fields(value: Any) -> Any:
    # `country: string` is shorthand for `country: {type: string}`.
    if isinstance(value, dict):
        return {k: ({"type": v} if isinstance(v, str) else v) for k, v in value.items()}
    return value


class EntityTypeSpec(Strict):
    """One entity type of the dictionary."""

    name: str
    description: str = ""
    owner: str = ""
    identifiers: list[str] = []
    fields: dict[str, FieldSpec] = {}
    events: dict[str, EventSpec] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _identifier(value, "entity type")

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_shorthand(cls, value: Any) -> Any:
        return _expand_fields(value)

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            check_label(name, "field name")
            if name in SYSTEM_ATTRIBUTES:
                raise ValueError(f"{name!r} is a system attribute every profile has already")
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _events_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (
                    {**v, "properties": _expand_fields(v.get("properties", {}))}
                    if isinstance(v, dict)
                    else (v if v is not None else {})
                )
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _identifiers_declared(self) -> EntityTypeSpec:
        for ident in self.identifiers:
            if ident not in self.fields:
                raise ValueError(f"identifier {ident!r} is not a declared field")
        return self


class ReviewSpec(Strict):
    """A tag's review policy (``review:`` on the definition; docs/reviews.md).

    ``all``: every assignment waits for a reviewer; ``confidence``: those whose confidence
    is at least ``below`` and under ``above`` wait, those at or above ``above`` apply at
    once and those under ``below`` are dropped; ``sample``: ``percent`` % of the entities,
    chosen by a hash of tag and entity (so recomputing never re-samples), wait.
    """

    mode: Literal["all", "confidence", "sample"]
    above: float | None = Field(default=None, ge=0, le=1)
    below: float | None = Field(default=None, ge=0, le=1)
    percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `review: all` is short for `review: {mode: all}`.
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _mode_fields(self) -> ReviewSpec:
        if self.mode == "confidence":
            if self.above is None or self.below is None:
                raise ValueError("mode confidence needs 'above' and 'below' (0 to 1)")
            if self.below > self.above:
                raise ValueError(f"'below' ({self.below}) must not exceed 'above' ({self.above})")
        elif self.above is not None or self.below is not None:
            raise ValueError("'above' and 'below' are for mode confidence")
        if self.mode == "sample" and self.percent is None:
            raise ValueError("mode sample needs 'percent' (more than 0, at most 100)")
        if self.mode != "sample" and self.percent is not None:
            raise ValueError("'percent' is for mode sample")
        return self


class TagSpec(Strict):
    """One tag definition. The rule language itself is checked after the file loads."""

    name: str
    entity: str
    # rule: computed from `rule` and/or `value`; imported: values uploaded from a file
    kind: Literal["rule", "imported"] = "rule"
    rule: str | None = None  # when the tag is held (default: whenever `value` is not null)
    # The same condition as JsonLogic (as visual query builders export it), instead of `rule`.
    jsonlogic: Any = None
    value: str | None = None  # the tag's value (default: true)
    multi: bool = False  # the value is a list of values
    value_type: FieldTypeName | None = None  # imported tags: the type of uploaded values
    valid_for: str | None = None  # imported tags: how long an uploaded value holds
    category: Annotated[list[str], Field(default_factory=list)]
    owner: str = ""
    description: str = ""
    # Set by the SQL rule front end: what happens when the rule holds (run by flows).
    action: dict[str, Any] | None = None
    # Whether assignments wait for a reviewer first (tagloop.review, docs/reviews.md).
    review: ReviewSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_label(value, "tag name")

    @field_validator("valid_for")
    @classmethod
    def _valid_for(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> TagSpec:
        if self.kind == "rule":
            if self.rule is not None and self.jsonlogic is not None:
                raise ValueError("give the condition once: as 'rule' or as 'jsonlogic'")
            if self.rule is None and self.jsonlogic is None and self.value is None:
                raise ValueError("a rule tag needs a 'rule' (or 'jsonlogic'), a 'value', or both")
            if self.valid_for is not None or self.value_type is not None:
                raise ValueError("'valid_for' and 'value_type' are for imported tags")
        else:
            if self.rule is not None or self.value is not None or self.jsonlogic is not None:
                raise ValueError(
                    "an imported tag has no 'rule', 'jsonlogic' or 'value': its values are "
                    "uploaded (tagloop tags import)"
                )
        if self.multi and self.kind == "rule" and self.value is None:
            raise ValueError("a multi-valued tag needs a 'value' expression giving a list")
        return self

    @field_validator("category", mode="before")
    @classmethod
    def _category_path(cls, value: Any) -> Any:
        # `category: 价值 > 等级` is the written form of ["价值", "等级"].
        if isinstance(value, str):
            return [part.strip() for part in value.split(">") if part.strip()]
        return value


FieldKind = Literal["string", "number", "integer", "boolean", "time", "date"]


class FieldRule(Strict):
    """How one value of a record is read: from which column, as what type, in what unit.

    ``from`` names the column (default: the field's own name; a dotted path reaches into
    nested JSON, ``meta.segments.device_id`` into what the transport added).
    """

    from_: str | None = Field(default=None, alias="from")
    type: FieldKind | None = None
    format: str | None = None  # strptime format of a time
    epoch: Literal["s", "ms", "us", "auto"] | None = None  # a time given as a number
    timezone: str | None = None  # of a time without an offset (default: the mapping's)
    unit: str | None = None  # the unit the value is in ...
    to: str | None = None  # ... and the one to store (both or neither)
    default: Any = None  # when the column is missing or empty

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @model_validator(mode="after")
    def _units(self) -> FieldRule:
        if (self.unit is None) != (self.to is None):
            raise ValueError("give both 'unit' (of the source) and 'to' (to store), or neither")
        if self.unit is not None and self.type not in (None, "number"):
            raise ValueError("unit conversion applies to numbers: use type number")
        return self


class ComputedField(Strict):
    """A value computed from the record's fields with a rule-language expression."""

    expr: str
    type: Literal["string", "number", "integer", "boolean"] = "number"


class RecordMapping(Strict):
    """How the fields of a record become a canonical event (see docs/sources.md).

    Values are read in this order: ``fields`` (renamed, typed, converted), ``constants``,
    ``computed``; ``properties``, ``attributes``, ``entity_id`` and ``time`` then name
    values by field or column.
    """

    type: str | None = None
    type_field: str | None = None
    entity_type: str
    entity_id: str
    # A regular expression with one group that extracts the id from the entity_id value,
    # e.g. '^CUST-(\\d+)$' keeps the number of 'CUST-0042'.
    entity_id_pattern: str | None = None
    id: list[str] = []
    time: str | None = None
    time_format: str | None = None
    epoch: Literal["s", "ms", "us", "auto"] | None = None
    timezone: str | None = None  # for times without an offset; default: the workspace's
    fields: dict[str, FieldRule | FieldKind] = {}
    constants: dict[str, Any] = {}
    computed: dict[str, ComputedField | str] = {}
    properties: dict[str, str] | Literal["*"] = "*"
    attributes: dict[str, str] = {}
    related: dict[str, str] = {}

    @field_validator("id", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @field_validator("entity_id_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                groups = re.compile(value).groups
            except re.error as exc:
                raise ValueError(f"entity_id_pattern: {exc}") from None
            if groups != 1:
                raise ValueError("entity_id_pattern needs exactly one group: (...)")
        return value

    @model_validator(mode="after")
    def _one_type(self) -> RecordMapping:
        if (self.type is None) == (self.type_field is None):
            raise ValueError("give exactly one of 'type' (a constant) or 'type_field' (a column)")
        return self

    def rule(self, name: str) -> FieldRule:
        """The `FieldRule` of a declared field (a bare type name is its short form)."""
        declared = self.fields[name]
        return FieldRule(type=declared) if isinstance(declared, str) else declared


FileMapping = RecordMapping  # the name of the first, file-only version


KIND_ALIASES = {"jdbc": "sql", "database": "sql", "http": "rest", "amqp": "rabbitmq"}


class SourceSpec(BaseModel):
    """A source file (``sources/<name>.yaml``): the keys every kind has.

    The others belong to the kind and are checked by its ``config_model`` when the
    workspace loads (`tagloop.sources.kinds`). ``type:`` is accepted for ``kind:``, and
    ``jdbc`` for ``sql``, as data-source configurations of other platforms write them.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    kind: str = Field(validation_alias=AliasChoices("kind", "type"))
    description: str = ""
    owner: str = ""
    enabled: bool = True
    every: str | None = None  # pulled sources: run every 5m ...
    cron: str | None = None  # ... or on a cron schedule, in the workspace's time zone
    mapping: dict[str, Any] | None = None  # the default mapping of every stream

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _identifier(value, "source name")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        value = value.strip().lower()
        return KIND_ALIASES.get(value, value)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("every: must be a positive duration, e.g. 5m")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from croniter import croniter

            if not croniter.is_valid(value):
                raise ValueError(f"cron: {value!r} is not a cron expression (e.g. '0 2 * * *')")
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> SourceSpec:
        if self.every is not None and self.cron is not None:
            raise ValueError("give one of 'every' or 'cron', not both")
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The kind's own keys."""
        return dict(self.model_extra or {})


# -- models (models/*.yaml) --------------------------------------------------------------
# Schedules name a cadence or give a cron expression (in the workspace's time zone).
SCHEDULE_ALIASES = {
    "daily": "0 3 * * *",
    "weekly": "0 3 * * 1",  # Mondays 03:00
    "monthly": "0 3 1 * *",  # the 1st, 03:00
}


class ModelLabel(Strict):
    """What is predicted and when it is observed: ``rule`` (a boolean expression) is
    evaluated ``horizon`` after each cutoff; the features are evaluated at the cutoff.
    Or ``reviews``: the review decisions on a tag are the labels, each entity decided on
    an example as of its decision time."""

    rule: str | None = None
    reviews: str | None = None  # a tag whose review decisions are the labels
    horizon: str = "0s"
    at: list[str] = []  # cutoff times (ISO dates or times, workspace time zone) ...
    every: str | None = None  # ... or one cutoff every this long over the data
    population: str | None = None  # who is an example at a cutoff (default: every entity)

    @field_validator("horizon", "every")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("at", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        # YAML reads an unquoted 2024-02-01 as a date: take it as the text it was written as.
        if not isinstance(value, list):
            return value
        from tagloop.timeutil import parse_time

        texts = [item.isoformat() if hasattr(item, "isoformat") else item for item in value]
        for item in texts:
            if isinstance(item, str):
                parse_time(item)
        return texts

    @model_validator(mode="after")
    def _one_way(self) -> ModelLabel:
        if (self.rule is None) == (self.reviews is None):
            raise ValueError("give the label once: as a 'rule' or as the 'reviews' of a tag")
        if self.reviews is not None and (self.at or self.every or self.population):
            raise ValueError(
                "labels from reviews are taken when each decision was made: "
                "'at', 'every' and 'population' do not apply"
            )
        if self.at and self.every is not None:
            raise ValueError("give the cutoffs once: 'at' (a list of times) or 'every'")
        if self.every is not None and parse_duration(self.every) <= 0:
            raise ValueError("every: must be a positive duration, e.g. 30d")
        return self


class ModelHoldout(Strict):
    kind: Literal["stratified", "time"] = "stratified"
    fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42


class ModelPromotion(Strict):
    metric: Literal["auc", "accuracy", "brier"] = "auc"
    margin: float = Field(default=0.01, ge=0, le=1)


class ModelSchedule(Strict):
    incremental: str = "weekly"
    full: str = "monthly"
    debounce: str = "5m"  # scoring on change: wait this long after an entity's last change

    @field_validator("incremental", "full")
    @classmethod
    def _cadence(cls, value: str) -> str:
        from croniter import croniter

        if value == "never" or value in SCHEDULE_ALIASES or croniter.is_valid(value):
            return value
        raise ValueError(
            f"{value!r} is not a schedule: daily, weekly, monthly, never or a cron expression"
        )

    @field_validator("debounce")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class ModelTraining(Strict):
    """LightGBM's main knobs; the defaults suit a few thousand to a few million rows."""

    n_estimators: int = Field(default=300, ge=1, le=20_000)
    learning_rate: float = Field(default=0.03, gt=0, le=1)
    num_leaves: int = Field(default=15, ge=2, le=4096)
    min_child_samples: int = Field(default=40, ge=1)
    subsample: float = Field(default=0.8, gt=0, le=1)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    reg_lambda: float = Field(default=1.0, ge=0)
    incremental_estimators: int = Field(default=50, ge=1, le=20_000)


class ModelSpec(Strict):
    """One model: features and label in the rule language, how it is trained and kept."""

    name: str
    entity: str
    description: str = ""
    owner: str = ""
    features: dict[str, str]
    label: ModelLabel
    holdout: ModelHoldout = ModelHoldout()
    threshold: float = Field(default=0.5, gt=0, lt=1)
    promotion: ModelPromotion = ModelPromotion()
    schedule: ModelSchedule = ModelSchedule()
    training: ModelTraining = ModelTraining()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _identifier(value, "model name")

    @field_validator("features")
    @classmethod
    def _features(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("a model needs at least one feature")
        for name in value:
            _identifier(name, "feature name")
        return value
