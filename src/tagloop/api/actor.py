"""Who is calling: the audit `Actor` of an API request."""

from __future__ import annotations

from fastapi import Request

from tagloop.audit import Actor


def request_actor(request: Request) -> Actor:
    """The authenticated caller (set by `tagloop.api.auth.require`) and its client address.

    The address is the connection's peer; behind a reverse proxy, run the server with
    trusted proxy headers so that it is the client's.
    """
    origin = request.client.host if request.client is not None else "unknown"
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return Actor("anonymous", "key", origin)
    kind = getattr(principal, "kind", "key")
    return Actor(str(principal.name), str(kind), origin)
