"""``moeclip data check``: what a benchmark folder holds, before a long evaluation finds out.

:func:`check_dataset` finds the folder's layout as ``load_benchmark`` does, then counts per class the normal
and anomalous images and the masks found, compares the counts with a complete copy's (the benchmarks table's
``expected_counts``, METHOD.md "The 14 benchmarks"), opens every image and mask header (not the pixels) to
find unreadable files and masks of another size than their image, and collects the problems instead of
stopping at the first. The report prints as a Markdown table or JSON.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..benchmarks import Benchmark, find_class
from .layouts import JSONL, BenchmarkLayout, Sample, open_layout


@dataclass
class ClassCounts:
    """One class of a checked split."""

    class_name: str
    description: str
    domain: str
    normal: int
    anomalous: int
    masks: int
    #: (normal, anomalous) of a complete copy, for the benchmark class this class is (or is part of).
    expected: tuple[int, int] | None = None
    #: The benchmark class the expectation is for, when this class is one of several pooled into it.
    expected_for: str | None = None
    matches_expected: bool | None = None


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    benchmark: str
    root: Path
    split: str
    layout: str
    classes: list[ClassCounts]
    problems: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def ok(self) -> bool:
        """No problem, and every count that has an expectation matches it."""
        return not self.problems and all(row.matches_expected is not False for row in self.classes)

    def to_markdown(self, max_problems: int = 10) -> str:
        lines = [f"{self.benchmark} {self.split} split under {self.root}: {self.layout}"]
        if self.note:
            lines.append(f"note: {self.note}")
        lines += [
            "",
            "| class | description | domain | normal | anomalous | masks | expected (normal / anomalous) | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.classes:
            expected = "-" if row.expected is None else f"{row.expected[0]} / {row.expected[1]}"
            if row.expected_for:
                expected += f" (all of {row.expected_for})"
            status = {True: "ok", False: "MISMATCH", None: "-"}[row.matches_expected]
            lines.append(
                f"| {row.class_name} | {row.description} | {row.domain} | {row.normal} | {row.anomalous} | "
                f"{row.masks} | {expected} | {status} |"
            )
        total = [sum(getattr(row, name) for row in self.classes) for name in ("normal", "anomalous", "masks")]
        lines.append(f"| **total** | | | {total[0]} | {total[1]} | {total[2]} | | |")
        if self.problems:
            lines += ["", f"{len(self.problems)} problem(s), the first {min(len(self.problems), max_problems)}:"]
            lines += [f"- {problem}" for problem in self.problems[:max_problems]]
        else:
            lines += ["", "no problems found"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "root": str(self.root),
            "split": self.split,
            "layout": self.layout,
            "note": self.note,
            "ok": self.ok,
            "classes": [vars(row) for row in self.classes],
            "problems": self.problems,
        }


def check_dataset(
    name: str,
    root: str | os.PathLike[str],
    split: str = "test",
    meta_file: str | os.PathLike[str] | None = None,
    keep_folders: bool = False,
    open_files: bool = True,
) -> CheckReport:
    """Count, compare and check a benchmark folder (see the module docstring).

    Args:
        name, root, split, meta_file, keep_folders: as ``load_benchmark`` takes them.
        open_files: read every image and mask header (sizes, readability); False counts files only.

    Raises:
        FileNotFoundError, ValueError: as ``load_benchmark``, when no layout can be found or a table
            (VisA's CSV, a JSON-lines file) is malformed: then there is nothing to count.
    """
    layout = open_layout(name, root, meta_file=meta_file, keep_folders=keep_folders)
    problems: list[str] = []
    classes = layout.classes(split)
    if not classes:
        problems.append(f"no {layout.name} classes with a {split!r} split under {layout.root}")
    counted: list[tuple[ClassCounts, list[Sample]]] = []
    for class_name in classes:
        try:
            samples = layout.samples(class_name, split)
        except (FileNotFoundError, ValueError) as error:
            problems.append(str(error))
            samples = []
        if not samples:
            problems.append(f"class {class_name!r} has no images in split {split!r}")
        row = ClassCounts(
            class_name,
            layout.describe(class_name),
            layout.domain(class_name),
            normal=sum(sample.label == 0 for sample in samples),
            anomalous=sum(sample.label == 1 for sample in samples),
            masks=sum(sample.mask_path is not None for sample in samples),
        )
        counted.append((row, samples))
    problems += layout.problems
    if split == "test":
        problems += _compare_with_expected(layout, [row for row, _ in counted])
    if open_files:
        for _, samples in counted:
            problems += [problem for sample in samples if (problem := _file_problem(sample))]
    return CheckReport(
        benchmark=layout.name,
        root=layout.root,
        split=split,
        layout=f"{type(layout).__name__} ({layout.pattern})",
        classes=[row for row, _ in counted],
        problems=problems,
        note=layout.note,
    )


def _home(layout: BenchmarkLayout, class_name: str) -> tuple[Benchmark, str] | None:
    """The benchmark class `class_name` is, for this layout: its own table entry, or any (JSON lines)."""
    if layout.benchmark is JSONL:
        return find_class(class_name)
    canonical = layout.benchmark.canonical(class_name)
    return (layout.benchmark, canonical) if canonical is not None else None


def _compare_with_expected(layout: BenchmarkLayout, rows: list[ClassCounts]) -> list[str]:
    """Fill each row's expectation; return the classes a complete copy has and this one lacks."""
    groups: dict[tuple[str, str], list[ClassCounts]] = defaultdict(list)
    entries: dict[str, Benchmark] = {}
    for row in rows:
        home = _home(layout, row.class_name)
        if home is not None and home[0].expected_counts and home[1] in home[0].expected_counts:
            groups[(home[0].name, home[1])].append(row)
            entries[home[0].name] = home[0]
    for (benchmark, canonical), members in groups.items():
        expected = entries[benchmark].expected_counts[canonical]
        found = (sum(row.normal for row in members), sum(row.anomalous for row in members))
        for row in members:
            row.expected, row.matches_expected = expected, found == expected
            if len(members) > 1 or row.class_name != canonical:
                row.expected_for = canonical
    if layout.benchmark is JSONL or not layout.benchmark.expected_counts:
        return []
    found = {canonical for _, canonical in groups}
    missing = [name for name in layout.benchmark.expected_counts if name not in found]
    if not missing:
        return []
    return [f"{len(missing)} {layout.benchmark.display_name} class(es) missing under {layout.root}: {', '.join(missing)}"]


def _file_problem(sample: Sample) -> str | None:
    """Why `sample`'s image or mask cannot be used, read from the file headers; None when both are fine."""
    sizes = []
    for path in (sample.image_path, sample.mask_path):
        if path is None:
            continue
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            return f"cannot read {path}: {error}"
    if len(sizes) == 2 and sizes[0] != sizes[1]:
        return (
            f"mask {sample.mask_path} is {sizes[1][0]}x{sizes[1][1]} but its image {sample.image_path} is "
            f"{sizes[0][0]}x{sizes[0][1]}"
        )
    return None
