from __future__ import annotations

from tagloop.cli import main

main()
