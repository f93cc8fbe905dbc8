"""tagloop: a tag-driven operations platform.

Business systems send events; tagloop keeps a profile per business entity, computes tags on
those profiles and lets tags drive action. See docs/ for the user guide.
"""

from __future__ import annotations

__version__ = "0.1.0"
