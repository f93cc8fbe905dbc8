"""The seam through which tag changes made outside an ingest commit (uploads, batch
recomputes of model tags, review decisions) start the flows they trigger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tagloop.store.tags import TagChange


class FlowStarter(Protocol):
    """Starts the flows tag changes trigger (`tagloop.ingest.pipeline.Ingestor`)."""

    def start_flows(
        self, conn: Any, changes: list[TagChange], now: int, chain: Sequence[str] = ()
    ) -> bool:
        """Create the runs ``changes`` start, in the transaction of ``conn``; True if any
        waits for a worker."""
        ...

    def flows_queued(self) -> None:
        """After the commit: wake a worker in this process."""
        ...
