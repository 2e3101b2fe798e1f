"""The field's cross-method meta file: JSON lines, one sample per line (METHOD.md).

::

    {"image_path": "bottle/test/broken/000.png", "mask_path": "bottle/gt/000.png", "label": 1, "class_name": "bottle"}

- ``image_path`` and ``mask_path`` are relative to the root; absolute paths and paths that leave
  the root (``..``, symbolic links) are refused with a ValueError naming them.
- ``mask_path`` may be missing, null or empty (no mask); ``label`` is 0 (normal) or 1.
- Optional ``split``: a line with one belongs to that split only, a line without to every split.
- Optional ``domain`` (``industrial`` or ``medical``). Without it, a class of one of the 14
  benchmarks takes that benchmark's domain and description (``Woven_001`` -> "Woven", medical
  for "brain"); any other class is industrial and described by its own name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...benchmarks import DOMAINS, home_benchmark
from ...modeling.prompts import describe
from .base import BenchmarkLayout, Sample, require_file, resolve_inside


class JSONLines(BenchmarkLayout):
    """Samples listed in a JSON-lines file, by default ``<root>/meta.jsonl``.

    Args:
        root: the folder every path in the file is relative to.
        meta_file: the JSON-lines file; a relative path is taken relative to `root`.
    """

    name = "jsonl"

    def __init__(self, root: str | os.PathLike[str], meta_file: str | os.PathLike[str] = "meta.jsonl") -> None:
        super().__init__(root)
        meta_path = Path(meta_file)
        self.meta_file = meta_path if meta_path.is_absolute() else self.root / meta_path
        if not self.meta_file.is_file():
            raise FileNotFoundError(f"JSON-lines meta file not found: {self.meta_file}")
        self._records = self._read()
        self._domains = self._class_domains()

    def classes(self, split: str) -> list[str]:
        return sorted({sample.class_name for sample, record_split, _ in self._records if record_split in (None, split)})

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = [
            sample
            for sample, record_split, _ in self._records
            if sample.class_name == class_name and record_split in (None, split)
        ]
        return sorted(samples, key=lambda sample: sample.image_path)

    def describe(self, class_name: str) -> str:
        home = home_benchmark(class_name)
        return describe(class_name, None if home is None else home.name)

    def domain(self, class_name: str) -> str:
        return self._domains[class_name]

    def _read(self) -> list[tuple[Sample, str | None, str | None]]:
        records = []
        with open(self.meta_file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    records.append(self._parse(line, f"{self.meta_file} line {number}"))
        return records

    def _parse(self, line: str, where: str) -> tuple[Sample, str | None, str | None]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error})") from error
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in ("image_path", "label", "class_name") if key not in record]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        label = record["label"]
        if label not in (0, 1) or isinstance(label, float):
            raise ValueError(f"{where}: label must be 0 or 1, got {label!r}")
        domain = record.get("domain")
        if domain is not None and domain not in DOMAINS:
            raise ValueError(f"{where}: domain must be one of {DOMAINS}, got {domain!r}")
        image = require_file(resolve_inside(self.root, str(record["image_path"]), where), where)
        mask = record.get("mask_path") or None
        if mask is not None:
            mask = require_file(resolve_inside(self.root, str(mask), where), where)
        return Sample(image, mask, int(label), str(record["class_name"])), record.get("split"), domain

    def _class_domains(self) -> dict[str, str]:
        domains: dict[str, str] = {}
        for sample, _, domain in self._records:
            home = home_benchmark(sample.class_name)
            domain = domain or (home.domain if home else "industrial")
            if domains.setdefault(sample.class_name, domain) != domain:
                raise ValueError(f"{self.meta_file}: class {sample.class_name!r} is given both domains {DOMAINS}")
        return domains
