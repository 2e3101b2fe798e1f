"""Writing analysis results: JSON with undefined values as null, CSV tables and Markdown snippets."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["json_ready", "markdown_table", "write_csv", "write_json"]


def json_ready(value: Any) -> Any:
    """A copy of nested dicts / lists / tuples of numbers with NaN replaced by None and floats rounded to 6 digits.

    NaN marks an undefined statistic (an expert no patch chose); strict JSON has no NaN, so it becomes null.
    """
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def write_json(path: Path, data: Any) -> Path:
    """Write `data` as indented strict JSON (see `json_ready`)."""
    path.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table; undefined (NaN or None) values are written as empty cells."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(json_ready(list(row)))
    return path


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; None cells are shown as a dash."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join("-" if cell is None else str(cell) for cell in row) + " |")
    return "\n".join(lines)
