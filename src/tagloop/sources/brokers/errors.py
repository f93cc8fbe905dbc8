"""Broker source errors, and keeping broker passwords out of them."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from tagloop.errors import TagloopError

__all__ = [
    "BrokerError",
    "BrokerUnavailable",
    "describe_error",
    "mask_url",
    "scrub",
    "url_secrets",
]


class BrokerError(TagloopError):
    """A broker source stopped: the broker failed or refused something after connecting."""

    status = 503
    code = "source_failed"


class BrokerUnavailable(BrokerError):
    """The broker could not be reached, refused the credentials or the set-up (a missing
    stream, a queue declared with other arguments); the runner retries with backoff."""

    code = "source_unavailable"


# --- secrets -------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``.

    >>> mask_url("amqp://guest:s3cret@rabbit:5672/")
    'amqp://guest:***@rabbit:5672/'
    >>> mask_url("redis://:s3cret@127.0.0.1:6379/0")
    'redis://:***@127.0.0.1:6379/0'
    >>> mask_url("nats://127.0.0.1:4222")
    'nats://127.0.0.1:4222'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_secrets(url: str) -> list[str]:
    """The strings of ``url`` that must never be shown (its password, raw and decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    raw = parts.netloc.rpartition("@")[0].partition(":")[2]
    return [s for s in {raw, parts.password or ""} if s]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (client errors may echo the URL)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def describe_error(exc: BaseException, secrets: Iterable[str]) -> str:
    """A one-line reason for a client exception, with its type (many have empty messages)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip() or repr(exc)
    return scrub(f"{type(exc).__name__}: {text}", secrets)
