"""Real services for tests: skip on a laptop without them, fail under CI=true."""

from __future__ import annotations

import os
import socket

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (laptop) or fail (CI) when ``name`` is not listening on ``host:port``."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if CI:
        pytest.fail(f"{message} (CI=true: services are required, see DEVELOPERS notes)")
    pytest.skip(message)
