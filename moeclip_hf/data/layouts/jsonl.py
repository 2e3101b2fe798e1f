"""The field's cross-method meta file: JSON lines, one sample per line (METHOD.md).

::

    {"image_path": "bottle/test/broken/000.png", "mask_path": "bottle/gt/000.png", "label": 1, "class_name": "bottle"}

It reads what the field writes, including the released code's ``dataset/metadata/<name>/full-shot.jsonl``:

- ``image_path`` and ``mask_path`` are relative to the root; absolute paths and paths that leave the root
  (``..``, symbolic links) are refused with a ValueError naming them.
- ``mask_path`` may be missing, null or empty (no mask).
- ``label`` is 0 (normal) or 1; ``0.0`` and ``1.0`` are the same labels (the released metadata of BTAD,
  the BMAD sets and the polyp sets write them so); anything else (``0.5``, ``"yes"``, ``true``) is refused.
- ``class_name`` names the class. A class of the benchmarks table, written as the table, the released code
  or a peer spells it (``Brain``, ``headct``, ``Colon_clinicDB``, ``CVC-300``, ``Woven_001``), takes that
  benchmark's description and domain: ``Brain`` is prompted as "scan" and scored as medical. Any other class
  is industrial and described by its own name.
- Optional ``description`` (the prompt wording) and ``domain`` (``industrial`` or ``medical``) override that,
  per class: the lines of one class may repeat the same value or leave it out, not disagree.
- Optional ``split``: a line with one belongs to that split only, a line without to every split.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...benchmarks import DOMAINS, Benchmark, find_class
from ...modeling.prompts import describe
from .base import BenchmarkLayout, Sample, require_file, resolve_inside, summarize_folder

#: The benchmark the JSON-lines layout reads for: no classes of its own, industrial by default.
JSONL = Benchmark(name="jsonl", display_name="JSON lines", domain="industrial", descriptions={}, pixel_labels=False)


@dataclass(frozen=True)
class _Line:
    sample: Sample
    split: str | None
    description: str | None
    domain: str | None
    where: str


class JSONLines(BenchmarkLayout):
    """Samples listed in a JSON-lines file, by default ``<root>/meta.jsonl``.

    Args:
        root: the folder every path in the file is relative to.
        benchmark: the table entry to read it for (default :data:`JSONL`).
        meta_file: the JSON-lines file; a relative path is taken relative to `root`.
    """

    pattern = "meta.jsonl: one {image_path, mask_path, label, class_name} object a line"

    def __init__(
        self,
        root: str | os.PathLike[str],
        benchmark: Benchmark = JSONL,
        meta_file: str | os.PathLike[str] = "meta.jsonl",
    ) -> None:
        super().__init__(root, benchmark)
        meta_path = Path(meta_file)
        self.meta_file = meta_path if meta_path.is_absolute() else self.root / meta_path
        if not self.meta_file.is_file():
            found = sorted(str(path.relative_to(self.root)) for path in self.root.glob("*/*.jsonl"))
            found = sorted(path.name for path in self.root.glob("*.jsonl")) + found
            hint = f"; JSON-lines files there: {', '.join(found[:6])} (pass one as the meta file)" if found else ""
            raise FileNotFoundError(
                f"JSON-lines meta file not found: {self.meta_file}; {self.root} holds "
                f"{summarize_folder(self.root)}{hint}"
            )
        self._lines = self._read()
        self._descriptions, self._domains = self._class_settings()

    @classmethod
    def matches(cls, root: Path) -> bool:
        return (root / "meta.jsonl").is_file()

    def classes(self, split: str) -> list[str]:
        return sorted({line.sample.class_name for line in self._lines if line.split in (None, split)})

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = [
            line.sample for line in self._lines if line.sample.class_name == class_name and line.split in (None, split)
        ]
        return sorted(samples, key=lambda sample: sample.image_path)

    def describe(self, class_name: str) -> str:
        return self._descriptions[class_name]

    def domain(self, class_name: str) -> str:
        return self._domains[class_name]

    def _read(self) -> list[_Line]:
        lines = []
        with open(self.meta_file, encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    lines.append(self._parse(text, f"{self.meta_file} line {number}"))
        return lines

    def _parse(self, text: str, where: str) -> _Line:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error})") from error
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in ("image_path", "label", "class_name") if key not in record]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        label = record["label"]
        if isinstance(label, bool) or not isinstance(label, (int, float)) or label not in (0, 1):
            raise ValueError(f"{where}: label must be 0 or 1 (0.0 and 1.0 are accepted), got {label!r}")
        domain = record.get("domain")
        if domain is not None and domain not in DOMAINS:
            raise ValueError(f"{where}: domain must be one of {DOMAINS}, got {domain!r}")
        description = record.get("description")
        if description is not None and (not isinstance(description, str) or not description.strip()):
            raise ValueError(f"{where}: description must be a non-empty string, got {description!r}")
        image = require_file(resolve_inside(self.root, str(record["image_path"]), where), where)
        mask = record.get("mask_path") or None
        if mask is not None:
            mask = require_file(resolve_inside(self.root, str(mask), where), where)
        sample = Sample(image, mask, int(label), str(record["class_name"]))
        return _Line(sample, record.get("split"), description and description.strip(), domain, where)

    def _class_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        """Per class: the description and domain its lines give, else those of its benchmark, else the
        class name and industrial. Two lines of a class giving different values is an error naming both."""
        given: dict[tuple[str, str], tuple[str, str]] = {}
        for line in self._lines:
            for key, value in (("description", line.description), ("domain", line.domain)):
                if value is None:
                    continue
                previous = given.setdefault((line.sample.class_name, key), (value, line.where))
                if previous[0] != value:
                    raise ValueError(
                        f"{line.where}: class {line.sample.class_name!r} has {key} {value!r}, but {previous[1]} "
                        f"gives it {previous[0]!r}; the lines of a class must agree"
                    )
        descriptions, domains = {}, {}
        for class_name in {line.sample.class_name for line in self._lines}:
            home = find_class(class_name)
            descriptions[class_name] = given.get((class_name, "description"), (describe(class_name),))[0]
            domains[class_name] = given.get((class_name, "domain"), (home[0].domain if home else "industrial",))[0]
        return descriptions, domains
