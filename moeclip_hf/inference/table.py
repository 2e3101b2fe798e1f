"""The result table of `moeclip detect ... --output results.csv`: one row per image, written as it goes.

Files of a table `results` (the `--output` suffix, .csv or .jsonl, only names it):

```
results.jsonl                         the rows, one JSON object per line: what --resume reads back
results.csv                           the same rows as CSV
results.settings.json                 model digest, class, domain, threshold, batch size: checked on --resume
results_maps/                         one anomaly map PNG per image (the `map_file` column)
results.part-00001-of-00002.jsonl     while a sharded run works: each process's rows; merged at the end
```

Rows are appended a batch at a time and flushed, JSON-lines first. A process killed mid-write can leave
only the last line cut short, so `read_rows` stops at the first line that is not a whole row, and
`truncate_to_rows` cuts a file of the process's own back to that point before it appends again. Scores
are written as Python's shortest round-trip repr of the float, so the table holds the exact values.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

#: The table's columns.
COLUMNS = ("path", "score", "verdict", "threshold", "map_file", "error")
#: `verdict` for `is_anomalous` True and False.
VERDICTS = {True: "anomalous", False: "normal"}
#: `verdict` of an image that could not be read: its row has no score, threshold or map, and says why in `error`.
UNREADABLE = "unreadable"
#: `--output` suffixes that ask for a table.
TABLE_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class DetectionRow:
    """One image's result: its key (`ImageItem.key`), score, verdict, the threshold and its map file (relative
    to the table's folder; empty when maps are not written). An image that could not be read has the verdict
    `UNREADABLE`, no score or threshold (`None`: empty in the CSV, null in JSON) and the reason in `error`."""

    path: str
    score: float | None
    verdict: str
    threshold: float | None
    map_file: str
    error: str = ""

    @classmethod
    def unreadable(cls, path: str, error: str) -> DetectionRow:
        return cls(path, None, UNREADABLE, None, "", error)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        values = (getattr(self, name) for name in COLUMNS)
        csv.writer(buffer, lineterminator="\n").writerow(["" if value is None else value for value in values])
        return buffer.getvalue()

    @classmethod
    def from_json(cls, line: str | bytes) -> DetectionRow:
        """The row of one JSON line; ValueError when it is not a whole row of this table."""
        try:
            values = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"not a JSON object: {error}") from error
        if not isinstance(values, dict) or set(values) != set(COLUMNS):
            raise ValueError(f"not a row with the columns {COLUMNS}")
        row = cls(**values)
        number = type(None) if row.verdict == UNREADABLE else float
        types = {"path": str, "score": number, "verdict": str, "threshold": number, "map_file": str, "error": str}
        if row.verdict not in (*VERDICTS.values(), UNREADABLE) or not all(
            isinstance(getattr(row, f.name), types[f.name]) for f in fields(cls)
        ):
            raise ValueError("a row with values of the wrong kind")
        return row


class TableFiles:
    """The paths of one table (see the module docstring), named after `output` without its suffix."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        output = Path(output)
        if output.suffix.lower() not in TABLE_SUFFIXES:
            raise ValueError(f"a result table is named .csv or .jsonl; got {output}")
        self.folder = output.parent
        self.name = output.stem
        self.jsonl = self.folder / f"{self.name}.jsonl"
        self.csv = self.folder / f"{self.name}.csv"
        self.settings = self.folder / f"{self.name}.settings.json"
        self.maps = self.folder / f"{self.name}_maps"

    def part(self, rank: int, num_processes: int) -> Path:
        """The rows file of process `rank` of a sharded run."""
        return self.folder / f"{self.name}.part-{rank:05d}-of-{num_processes:05d}.jsonl"

    def parts(self) -> list[Path]:
        """Part files present, of this run or of an interrupted run with another number of processes."""
        return sorted(self.folder.glob(f"{self.name}.part-*-of-*.jsonl"))

    def existing(self) -> list[Path]:
        """The table's files that exist (the maps folder aside)."""
        return [path for path in (self.jsonl, self.csv, self.settings, *self.parts()) if path.exists()]

    def remove(self) -> None:
        """Delete the table's files (for --overwrite); maps are overwritten image by image."""
        for path in self.existing():
            path.unlink()

    def written_rows(self) -> list[DetectionRow]:
        """The whole rows of the table and of every part file, each key once: the first scored row, else its
        `unreadable` row (a resumed run tries unreadable images again)."""
        rows: dict[str, DetectionRow] = {}
        for path in (self.jsonl, *self.parts()):
            for row in read_rows(path)[0]:
                if row.path not in rows or rows[row.path].verdict == UNREADABLE:
                    rows[row.path] = row
        return list(rows.values())


def read_rows(path: Path) -> tuple[list[DetectionRow], int]:
    """The whole rows of a JSON-lines table and the number of bytes they fill ([], 0 when it does not exist).

    A last line without its newline, or that is not a whole row, is what a kill during a write leaves: it is
    not counted. Any earlier line that is not a row is an error naming it.
    """
    if not path.exists():
        return [], 0
    lines = path.read_bytes().splitlines(keepends=True)
    rows, end = [], 0
    for number, line in enumerate(lines, start=1):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("no newline")
            rows.append(DetectionRow.from_json(line))
        except ValueError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}, line {number}: {error}. Only the last line may be cut short; restore the file or write a new --output") from error
        end += len(line)
    return rows, end


def truncate_to_rows(path: Path) -> list[DetectionRow]:
    """Cut a table file back to its whole rows (after a kill) and return them."""
    rows, end = read_rows(path)
    if path.exists() and path.stat().st_size != end:
        os.truncate(path, end)
    return rows


def write_table(files: TableFiles, rows: Sequence[DetectionRow]) -> None:
    """Write the JSON-lines and CSV tables whole, each to a temporary file renamed over the old one."""
    _replace(files.jsonl, "".join(row.to_json() for row in rows))
    _replace(files.csv, csv_header() + "".join(row.to_csv() for row in rows))


def csv_header() -> str:
    return ",".join(COLUMNS) + "\n"


def _replace(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


class RowWriter:
    """Appends rows a batch at a time to a JSON-lines file and, optionally, a CSV file; flushed after each batch."""

    def __init__(self, jsonl: Path, csv_path: Path | None = None) -> None:
        self.jsonl_path, self.csv_path = jsonl, csv_path
        self._jsonl = open(jsonl, "a", encoding="utf-8", newline="")
        self._csv = None
        if csv_path is not None:
            self._csv = open(csv_path, "a", encoding="utf-8", newline="")
            if self._csv.tell() == 0:
                self._csv.write(csv_header())

    def append(self, rows: Iterable[DetectionRow]) -> None:
        rows = list(rows)
        if not rows:
            return
        self._jsonl.write("".join(row.to_json() for row in rows))
        self._jsonl.flush()
        if self._csv is not None:
            self._csv.write("".join(row.to_csv() for row in rows))
            self._csv.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._csv is not None:
            self._csv.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def ordered(rows: Iterable[DetectionRow], order: Mapping[str, int]) -> list[DetectionRow]:
    """Rows in the order of their images among the inputs; rows of images no longer listed last, as found."""
    rows = list(rows)
    return sorted(rows, key=lambda row: order.get(row.path, len(order)))


__all__ = [
    "COLUMNS",
    "TABLE_SUFFIXES",
    "UNREADABLE",
    "VERDICTS",
    "DetectionRow",
    "RowWriter",
    "TableFiles",
    "csv_header",
    "ordered",
    "read_rows",
    "truncate_to_rows",
    "write_table",
]
