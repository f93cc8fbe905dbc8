"""The web console, served by the API's server at ``/`` (the API stays at ``/v1``).

Server-rendered pages (Jinja2) progressively enhanced with htmx, charts with Apache
ECharts; both libraries are vendored in ``static/vendor`` so the server works offline.
One module per page group; `install` adds them all to the app.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the console's routes to the API app."""
    from tagloop.console import (
        catalogue,
        editor,
        flows,
        overview,
        profiles,
        reviews,
        signin,
    )

    for module in (signin, overview, catalogue, editor, profiles, flows, reviews):
        app.include_router(module.router)
