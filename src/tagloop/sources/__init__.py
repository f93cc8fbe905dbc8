"""Sources: declared connections to business systems and the mapping of their records."""

from __future__ import annotations
