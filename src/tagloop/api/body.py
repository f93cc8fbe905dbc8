"""Reading request bodies with a hard size limit, before any parsing."""

from __future__ import annotations

from fastapi import Request

from tagloop.errors import PayloadTooLarge, ValidationFailed


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything larger than ``limit`` bytes as it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ValidationFailed("invalid Content-Length header")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
