"""The VisA layout: one table, ``split_csv/1cls.csv``, lists every image.

Columns ``object,split,label,image,mask``; ``label`` is ``normal`` or ``anomaly``; ``image`` and
``mask`` are paths relative to the root (``mask`` empty for normal images). Paths that leave the
root are refused (see ``base.resolve_inside``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .base import BenchmarkLayout, Sample, require_file, resolve_inside

_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": 0, "anomaly": 1}


class VisA(BenchmarkLayout):
    """VisA: 12 classes listed in ``split_csv/1cls.csv`` (METHOD.md, "The 14 benchmarks")."""

    name = "visa"
    table = Path("split_csv") / "1cls.csv"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._rows = self._read_table()

    def classes(self, split: str) -> list[str]:
        return sorted({row["object"] for row in self._rows if row["split"] == split})

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = [self._sample(row) for row in self._rows if row["object"] == class_name and row["split"] == split]
        return sorted(samples, key=lambda sample: sample.image_path)

    def _read_table(self) -> list[dict[str, str]]:
        path = self.root / self.table
        if not path.is_file():
            raise FileNotFoundError(f"VisA split table not found: {path}")
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in _COLUMNS if column not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; expected {list(_COLUMNS)}")
            rows = []
            for row in reader:
                row = {key: (value or "").strip() for key, value in row.items() if key in _COLUMNS}
                row["where"] = f"{path} line {reader.line_num}"
                if row["label"] not in _LABELS:
                    raise ValueError(f"{row['where']}: label {row['label']!r} is neither 'normal' nor 'anomaly'")
                rows.append(row)
        return rows

    def _sample(self, row: dict[str, str]) -> Sample:
        where, label = row["where"], _LABELS[row["label"]]
        image = require_file(resolve_inside(self.root, row["image"], where), where)
        if label == 0:
            return Sample(image, None, 0, row["object"])
        if not row["mask"]:
            raise ValueError(f"{where}: anomalous image {image} has no mask")
        mask = require_file(resolve_inside(self.root, row["mask"], where), where)
        return Sample(image, mask, 1, row["object"])
