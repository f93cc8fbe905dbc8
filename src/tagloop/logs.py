"""Structured logging: one JSON object per line in production, readable lines in development."""

from __future__ import annotations

import logging
import os
import sys

import structlog

LOG_FORMAT_ENV = "TAGLOOP_LOG_FORMAT"  # "json" or "console"
LOG_LEVEL_ENV = "TAGLOOP_LOG_LEVEL"  # DEBUG, INFO (the server's default), WARNING, ERROR


def configure(fmt: str | None = None, level: str | None = None) -> None:
    fmt = fmt or os.environ.get(LOG_FORMAT_ENV) or ("console" if sys.stderr.isatty() else "json")
    level = (level or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_: _Stderr(),
        cache_logger_on_first_use=False,
    )


class _Stderr:
    """Writes each record to whatever ``sys.stderr`` is when it is logged: a stream bound
    at configuration time may since have been replaced and closed (test capture)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
