"""VisA as downloaded: twelve ``<class>/Data`` trees, split by the ``split_csv/1cls.csv`` table.

::

    <root>/split_csv/1cls.csv                       object, split, label, image, mask
    <root>/<class>/Data/Images/Normal/<id>.JPG      normal
    <root>/<class>/Data/Images/Anomaly/<id>.JPG     anomalous
    <root>/<class>/Data/Masks/Anomaly/<id>.png      its mask

:class:`VisASplitTable` reads the table (METHOD.md, "The 14 benchmarks"). :class:`VisADataTree` reads a copy
without it, such as the tree the released code's metadata indexes: the table's choice of test images among
the normal ones follows no rule that the file names show, so without it every normal image is read as a test
image (the anomalous images are all test images either way). Such a test split is larger than the 1cls
protocol's (``moeclip data check`` shows the difference); pass the table, or the released metadata through
the ``jsonl`` layout, to reproduce the paper's counts. VisA converted to the 1cls folder tree (spot-diff's
``prepare_data.py``, anomalib's ``visa_pytorch``) is the state-folder layout ``folders.ClassFolders``.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from ...benchmarks import Benchmark
from .base import BenchmarkLayout, Sample, has_images, list_images, require_file, resolve_inside, subfolders

logger = logging.getLogger(__name__)

_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": 0, "anomaly": 1}


class VisASplitTable(BenchmarkLayout):
    """The classes and splits listed in ``split_csv/1cls.csv``, paths relative to the root."""

    table = Path("split_csv") / "1cls.csv"
    pattern = "split_csv/1cls.csv over <class>/Data/Images/{Normal,Anomaly}/*.JPG"

    def __init__(self, root: str | os.PathLike[str], benchmark: Benchmark) -> None:
        super().__init__(root, benchmark)
        self._rows = self._read_table()

    @classmethod
    def matches(cls, root: Path) -> bool:
        return (root / cls.table).is_file()

    def classes(self, split: str) -> list[str]:
        return sorted({row["object"] for row in self._rows if row["split"] == split})

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = [self._sample(row) for row in self._rows if row["object"] == class_name and row["split"] == split]
        return sorted(samples, key=lambda sample: sample.image_path)

    def _read_table(self) -> list[dict[str, str]]:
        path = self.root / self.table
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


class VisADataTree(BenchmarkLayout):
    """``<class>/Data/Images/{Normal,Anomaly}`` and ``<class>/Data/Masks/Anomaly`` without the split table:
    the ``test`` split is every image (see the module docstring); there is no ``train`` split."""

    pattern = "<class>/Data/Images/{Normal,Anomaly}/*.JPG, masks <class>/Data/Masks/Anomaly/<id>.png (no split_csv)"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(cls._is_class(folder) for folder in subfolders(root))

    @staticmethod
    def _is_class(folder: Path) -> bool:
        return has_images(folder / "Data" / "Images" / "Normal") or has_images(folder / "Data" / "Images" / "Anomaly")

    def classes(self, split: str) -> list[str]:
        if split != "test":
            return []
        logger.warning(
            "%s has no split_csv/1cls.csv: every normal image is read as a test image, more than the 1cls "
            "protocol's test split holds", self.root,
        )
        return [folder.name for folder in subfolders(self.root) if self._is_class(folder)]

    def samples(self, class_name: str, split: str) -> list[Sample]:
        data = self.root / class_name / "Data"
        samples = [Sample(image, None, 0, class_name) for image in list_images(data / "Images" / "Normal")]
        mask_folder = data / "Masks" / "Anomaly"
        samples += [
            Sample(image, self.mask_of(image, mask_folder), 1, class_name)
            for image in list_images(data / "Images" / "Anomaly")
        ]
        return sorted(samples, key=lambda sample: sample.image_path)
