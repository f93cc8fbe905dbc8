"""Derive the bundled demo sample from the real Online Retail file.

The sample (December 2010, the first month of the data set) lets `make run` work on a
machine without ../shared/data. Run: .venv/bin/python scripts/make_demo_sample.py
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared/data/online_retail/online_retail.csv.gz"
TARGET = REPO / "src/tagloop/demo/data/online_retail_sample.csv.gz"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    rows = 0
    with (
        gzip.open(source, "rt", encoding="utf-8", newline="") as src,
        gzip.GzipFile(TARGET, "wb", compresslevel=9, mtime=0) as raw,
    ):
        out = csv.writer(_Text(raw), lineterminator="\n")
        reader = csv.reader(src)
        out.writerow(next(reader))
        for row in reader:
            if not row[4].startswith("2010-12"):
                break
            out.writerow(row)
            rows += 1
    print(f"{TARGET}: {rows} rows")


class _Text:
    def __init__(self, raw: gzip.GzipFile) -> None:
        self.raw = raw

    def write(self, text: str) -> None:
        self.raw.write(text.encode("utf-8"))


if __name__ == "__main__":
    main()
