"""Prometheus metrics (exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter(
    "tagloop_events_accepted_total", "Events stored (new ids only)", ["source"]
)
EVENTS_DUPLICATE = Counter(
    "tagloop_events_duplicate_total",
    "Events skipped because their id was already stored",
    ["source"],
)
EVENTS_REJECTED = Counter(
    "tagloop_events_rejected_total", "Events refused with a validation error", ["source"]
)
INGEST_SECONDS = Histogram(
    "tagloop_ingest_seconds",
    "Time from receiving an ingestion request to its events being committed",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TAG_CHANGES = Counter("tagloop_tag_changes_total", "Tag assignments changed", ["change"])
HTTP_SECONDS = Histogram(
    "tagloop_http_request_seconds", "HTTP request duration", ["method", "route", "status"]
)
COMMIT_EVENTS = Histogram(
    "tagloop_commit_events",
    "Events per group-commit transaction",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
)
COMMIT_SECONDS = Histogram(
    "tagloop_commit_seconds",
    "Duration of a group-commit transaction",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RATELIMIT_REJECTED = Counter(
    "tagloop_ratelimit_rejected_total",
    "Requests refused with 429: by an API key's or user's bucket (caller), or by the "
    "bucket of a client address failing authentication (address)",
    ["bucket"],
)
RATELIMIT_FALLBACKS = Counter(
    "tagloop_ratelimit_fallbacks_total",
    "Requests limited in-process because the shared rate limit store (Redis) failed",
)
SOURCE_RECORDS = Counter("tagloop_source_records_total", "Records read by a source", ["source"])
SOURCE_EVENTS = Counter(
    "tagloop_source_events_total", "Events a source stored (new ids only)", ["source"]
)
SOURCE_REJECTED = Counter(
    "tagloop_source_rejected_total", "Records of a source sent to the dead letters", ["source"]
)
SOURCE_FAILURES = Counter(
    "tagloop_source_failures_total", "Failed runs of a source (retried with backoff)", ["source"]
)
SOURCE_LAG = Gauge(
    "tagloop_source_lag_seconds",
    "Now minus the time of the newest event a source committed",
    ["source"],
)
SOURCE_UP = Gauge("tagloop_source_up", "1 while a source works, 0 while it fails", ["source"])
