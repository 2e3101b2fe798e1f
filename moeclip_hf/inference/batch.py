"""Batch inference into a result table: many images, batched, resumable, sharded over processes.

`detect_to_table` scores `ImageItem`s (`sources.collect_images`) with a detector (the zero-shot-anomaly-
detection pipeline) and writes one row per image as it goes (`table`):

- the images are cut into fixed batches (`distributed.fixed_batches`); a model's floats depend on the batch
  an image is computed in, so every image is always computed in the same batch: a resumed or sharded run
  writes bit for bit the scores of one uninterrupted process;
- `resume=True` reads back the rows already written and scores only the batches that still miss one; a
  batch whose rows were only partly written when the run was killed is computed again whole and only its
  missing rows are written;
- under `accelerate launch` / `torchrun` each process scores a contiguous share of those batches into its
  own part file; at the end the main process merges the table, rows in input order;
- an image that cannot be read (a corrupt or vanished file) gets an `unreadable` row with the reason, and
  the rest of its batch is scored as usual: one bad file among a day's images does not stop the run, and
  `--resume` tries it again (its batch is computed whole, so the scores are those of a run where it was good).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..distributed.agreement import relative_paths, require_agreement, sequence_fingerprint
from ..distributed.processes import ProcessGroup, SingleProcess
from ..distributed.sharding import fixed_batches, shard_batches
from .sources import ImageItem
from .table import UNREADABLE, VERDICTS, DetectionRow, RowWriter, TableFiles, ordered, read_rows, truncate_to_rows, write_table

#: A batch of RGB pictures -> one result per picture, as the pipeline returns them for a list:
#: {"score": float, "is_anomalous": bool, "threshold": float, "anomaly_map": grayscale PIL image}.
Detector = Callable[[list[Image.Image]], list[dict[str, Any]]]


@dataclass
class TableSummary:
    """What a run wrote: the table's rows (main process only; empty elsewhere), how many images each process
    scored in this run, and how many rows were already written before it."""

    rows: list[DetectionRow]
    images_per_rank: list[int]
    already_written: int
    files: TableFiles

    @property
    def num_anomalous(self) -> int:
        return sum(row.verdict == VERDICTS[True] for row in self.rows)

    @property
    def num_unreadable(self) -> int:
        return sum(row.verdict == UNREADABLE for row in self.rows)


class _Pictures(Dataset):
    """Items decoded where the DataLoader runs them (in its workers when it has some): the RGB picture, or the
    reason it could not be read."""

    def __init__(self, items: Sequence[ImageItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Image.Image | str]:
        try:
            return index, self.items[index].read()
        except (OSError, ValueError) as error:  # what the image reader raises for a file it cannot decode
            return index, str(error)


def _as_list(batch: list) -> list:
    return batch


def detect_to_table(
    detector: Detector,
    items: Sequence[ImageItem],
    output: str | os.PathLike[str],
    settings: Mapping[str, Any],
    model_digest: str,
    batch_size: int = 8,
    num_workers: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    write_maps: bool = True,
    processes: ProcessGroup | None = None,
    progress: bool = True,
) -> TableSummary:
    """Score `items` with `detector` in batches of `batch_size` and write the table `output` (.csv or .jsonl).

    Args:
        detector: scores one batch of pictures (the pictures of one call form one model batch).
        items: the images, in the order of the table.
        output: the table's name; both `.csv` and `.jsonl` are written, maps into `<name>_maps/`.
        settings: what else fixes the numbers (class name, domain, threshold, backend): recorded with the batch
            size in `<name>.settings.json` and compared on resume.
        model_digest: the model's SHA-256 (`distributed.model_fingerprint`), recorded and compared likewise.
        resume: continue the table at `output`, scoring only images without a row or with an `unreadable` one.
        overwrite: delete the table at `output` first.
        write_maps: write each image's anomaly map as a PNG (else `map_file` is empty).
        processes: the processes of the run (`distributed.launched_processes()`); all must call this alike.
        progress: show a progress bar (main process only) whose total is all images.

    Raises:
        ValueError: the table exists and neither `resume` nor `overwrite` is set; resuming with other settings
            or another model than the table was written with; processes that disagree on the model, the
            settings, the images or the rows already written.
    """
    group = processes or SingleProcess()
    record = {**settings, "batch_size": batch_size, "model_sha256": model_digest}
    if group.num_processes > 1:
        require_agreement(group, {
            "model (config and weights)": model_digest,
            "settings (class, domain, threshold, batch size)": sequence_fingerprint([settings, batch_size]),
            "list of images (paths relative to the folder they share, in order)": sequence_fingerprint(
                relative_paths([item.key for item in items])
            ),
        })  # fmt: skip
    files = TableFiles(output)
    own_file, done = _open_table(files, group, record, resume, overwrite, write_maps)
    batches = fixed_batches(range(len(items)), batch_size)
    pending = [batch for batch in batches if any(items[index].key not in done for index in batch)]
    share = shard_batches(pending, group.num_processes, group.rank)
    already = sum(item.key in done for item in items)
    bar = tqdm(total=len(items), initial=already, unit="img", desc="detect", disable=not (progress and group.is_main))
    loader = DataLoader(_Pictures(items), batch_sampler=share, collate_fn=_as_list, num_workers=num_workers)
    scored_here = 0
    with RowWriter(own_file, files.csv if own_file == files.jsonl else None) as writer:
        for batch in loader:
            readable = [(index, picture) for index, picture in batch if isinstance(picture, Image.Image)]
            results = dict(zip((index for index, _ in readable), detector([picture for _, picture in readable]) if readable else [], strict=True))
            rows = [
                _row(items[index], results[index], files, write_maps)
                if index in results
                else DetectionRow.unreadable(items[index].key, problem)
                for index, problem in batch
                if items[index].key not in done  # a batch partly written before a kill: only its missing rows
            ]
            writer.append(rows)
            scored_here += len(rows)
            # The other processes move at about this process's pace: count their rows as written too.
            bar.update(min(len(rows) * group.num_processes, bar.total - bar.n))
    images_per_rank = [int(count) for count in group.all_gather(torch.tensor([scored_here]))]
    bar.update(bar.total - bar.n)
    bar.close()
    rows = _merge(files, items) if group.is_main else []
    group.barrier()  # the merged table is complete before any process returns
    return TableSummary(rows, images_per_rank, already, files)


def _open_table(
    files: TableFiles, group: ProcessGroup, record: Mapping[str, Any], resume: bool, overwrite: bool, write_maps: bool
) -> tuple[Path, set[str]]:
    """Check and prepare the table's files; return the file this process appends to and the keys already written.

    Alone, a process appends to the table itself (cut back to whole rows first); in a sharded run each
    process appends to its own part file. Every process then reads every rows file, and the processes
    check that they read the same rows (which they do only when the output folder is shared).
    """
    _check_existing(files, record, resume, overwrite)
    group.barrier()  # every process has checked before the main one changes anything
    single = group.num_processes == 1
    if group.is_main:
        files.folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            files.remove()
        _write_settings(files, record)
        if write_maps:
            files.maps.mkdir(exist_ok=True)
        if single and files.jsonl.exists():
            write_table(files, truncate_to_rows(files.jsonl))
    own_file = files.jsonl if single else files.part(group.rank, group.num_processes)
    group.barrier()
    if not single:
        truncate_to_rows(own_file)
        own_file.touch()
    group.barrier()
    done = {row.path for row in files.written_rows() if row.verdict != UNREADABLE}
    if not single:
        require_agreement(group, {
            "rows already written and part files present (with several machines, --output must be on a folder "
            "all of them share)": sequence_fingerprint([sorted(done), [path.name for path in files.parts()]]),
        })  # fmt: skip
    return own_file, done


def _check_existing(files: TableFiles, record: Mapping[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: an existing table needs --resume (same settings) or --overwrite."""
    if resume and overwrite:
        raise ValueError("--resume continues a table and --overwrite deletes it: pass one of them")
    existing = files.existing()
    if existing and not (resume or overwrite):
        raise ValueError(f"{existing[0]} exists: pass --resume to continue that run, or --overwrite to start over")
    if resume and files.settings.exists():
        recorded = json.loads(files.settings.read_text())
        changed = [f"{name}: {recorded.get(name)!r} then, {value!r} now" for name, value in record.items() if recorded.get(name) != value]
        if changed:
            raise ValueError(
                f"--resume: {files.settings} records other settings than this run's ({'; '.join(changed)}). "
                "Resume with the same model and options, or write a new --output"
            )


def _write_settings(files: TableFiles, record: Mapping[str, Any]) -> None:
    staging = files.settings.with_name(f".{files.settings.name}.tmp")
    staging.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(staging, files.settings)


def _row(item: ImageItem, result: Mapping[str, Any], files: TableFiles, write_maps: bool) -> DetectionRow:
    map_file = ""
    if write_maps:
        path = files.maps / item.map_name
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        result["anomaly_map"].save(staging, format="PNG")
        os.replace(staging, path)  # a kill never leaves a half-written map under the row's name
        map_file = path.relative_to(files.folder).as_posix()
    score, threshold = float(result["score"]), float(result["threshold"])
    return DetectionRow(item.key, score, VERDICTS[bool(result["is_anomalous"])], threshold, map_file)


def _merge(files: TableFiles, items: Sequence[ImageItem]) -> list[DetectionRow]:
    """The table in input order, written whole when part files remain or the order moved; parts deleted."""
    parts = files.parts()
    current = read_rows(files.jsonl)[0]
    rows = ordered(files.written_rows(), {item.key: index for index, item in enumerate(items)})
    missing = [item.key for item in items if item.key not in {row.path for row in rows}]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) have no row after the run (first: {missing[0]}): their processes' part files "
            f"were not found next to {files.jsonl}; with several machines, --output must be on a folder all of them share"
        )
    if parts or rows != current:
        write_table(files, rows)
    for part in parts:
        part.unlink()
    return rows


__all__ = ["Detector", "TableSummary", "detect_to_table"]
