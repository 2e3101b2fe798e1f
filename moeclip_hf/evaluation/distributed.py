"""Evaluation over several processes: the per-class accumulators joined exactly on the main process.

Each process scores its share of a class's batches (`distributed.shard_batches`) into its own
`ClassMetricAccumulator`; `gather_accumulator` then moves every share, as stored, to the main process
and adds them there in rank order. Shares are consecutive runs of the class's images, so the joined
accumulator holds the single-process run's values in the single-process order, and `compute` returns
the same floats: the MoECLIP protocol's per-class min-max and the ranking metrics need every image of
the class, which is why the buffers and not partial metrics are gathered.
"""

from __future__ import annotations

import torch
from datasets import Dataset

from ..distributed.agreement import relative_paths, sequence_fingerprint
from ..distributed.processes import ProcessGroup, gather_rows
from .accumulator import STORED_DTYPES, ClassMetricAccumulator

#: What each process announces before its share travels: (number of images, has maps, map height and
#: width, has masks, mask height and width).
_HEADER_LENGTH = 7


def gather_accumulator(accumulator: ClassMetricAccumulator, group: ProcessGroup) -> ClassMetricAccumulator | None:
    """Every process's share of one class, joined in rank order on the main process; None elsewhere.

    Every process must call it, including those that scored no image of the class (they send an empty
    share). With a single process the accumulator itself is returned.

    Raises:
        ValueError: when processes stored maps or masks of different sizes, or maps on some and not others.
    """
    if group.num_processes == 1:
        return accumulator
    stored = accumulator.stored()
    headers = group.all_gather(_header(stored))
    filled = [header for header in headers if header[0] > 0]
    if any(not torch.equal(header[1:], filled[0][1:]) for header in filled):
        shapes = {rank: header[1:].tolist() for rank, header in enumerate(headers) if header[0] > 0}
        raise ValueError(
            f"the processes stored this class's maps and masks differently ([has maps, height, width, has masks, "
            f"height, width] by process: {shapes}); every process must score with the same model and data"
        )
    shape = filled[0].tolist() if filled else [0] * _HEADER_LENGTH
    row_shapes = {
        "image_scores": (),
        "image_labels": (),
        "pixel_maps": tuple(shape[2:4]) if shape[1] else None,
        "pixel_masks": tuple(shape[5:7]) if shape[4] else None,
    }
    shares: dict[str, list[torch.Tensor] | None] = {}
    for name, row_shape in row_shapes.items():
        if row_shape is None:
            continue
        rows = stored[name]
        if rows is None:
            rows = torch.empty((0, *row_shape), dtype=STORED_DTYPES[name])
        shares[name] = gather_rows(group, rows)
    if not group.is_main:
        return None
    counts = [int(header[0]) for header in headers]
    joined = ClassMetricAccumulator(expected_num_images=sum(counts))
    for rank, count in enumerate(counts):
        if count:
            joined.update(**{name: parts[rank] for name, parts in shares.items()})
    return joined


def _header(stored: dict[str, torch.Tensor | None]) -> torch.Tensor:
    labels, maps, masks = stored["image_labels"], stored["pixel_maps"], stored["pixel_masks"]
    return torch.tensor(
        [
            0 if labels is None else labels.shape[0],
            maps is not None, *(maps.shape[1:] if maps is not None else (0, 0)),
            masks is not None, *(masks.shape[1:] if masks is not None else (0, 0)),
        ],
        dtype=torch.int64,
    )  # fmt: skip


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 of what a benchmark dataset asks to score: each row's image and mask path (relative to the
    folder they share), label, class, prompt description and domain, in order. Read from the Arrow columns;
    no image is opened."""
    columns = dataset.data
    masks = [mask and mask.get("path") for mask in columns.column("mask").to_pylist()]
    rows = zip(
        relative_paths(columns.column("path").to_pylist()),
        relative_paths(masks),
        *(columns.column(name).to_pylist() for name in ("label", "class_name", "description", "domain")),
        strict=True,
    )
    return sequence_fingerprint(rows)


__all__ = ["dataset_fingerprint", "gather_accumulator"]
