"""The HTTP protocol `tagloop serve` runs: uvicorn's httptools protocol with the two bounds it
lacks, a deadline and a size limit for request headers.

Uvicorn times out idle keep-alive connections, and `tagloop.api.body` bounds the time a
body may take; but a connection that sends nothing, or its headers a byte at a time,
would stay open for ever (the classic "slowloris"). Here the headers of each request must
arrive within `HEADER_TIMEOUT` seconds of its first byte (or of the connection opening)
and fit in `MAX_HEADER_BYTES`; otherwise the connection is closed (too slow) or answered
400 (too large).
"""

from __future__ import annotations

import asyncio

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0  # seconds for a request line and headers
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a deadline and a size limit for request headers.

    Used as ``uvicorn.run(..., http="tagloop.api.server:BoundedHttpToolsProtocol")``.
    """

    header_timeout = HEADER_TIMEOUT
    max_header_bytes = MAX_HEADER_BYTES
    _header_bytes = 0
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            # The parser stops; uvicorn answers 400 and closes the connection.
            raise httptools.HttpParserError(f"request headers exceed {self.max_header_bytes} bytes")

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
