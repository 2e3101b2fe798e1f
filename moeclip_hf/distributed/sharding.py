"""Disjoint shares of fixed batches: each process scores whole batches of the single-process run.

A model's output for an image can differ in its last bits with the batch it is computed in (matrix
products take other kernels for other batch sizes; on a CPU the tiny model's maps moved by 1e-7 between
batches of 1 and 8). So the work is cut into the batches one process would form, `fixed_batches`, and
whole batches are shared out, `shard_batches`: every image is computed in the same batch, hence to the
same floats, whatever the number of processes, and no image is scored twice (no padding duplicates, as
`DistributedSampler` would add) or left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

Batch = TypeVar("Batch", bound=Sequence)


def fixed_batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """`indices` cut into consecutive batches of `batch_size` (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    indices = list(indices)
    return [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]


def shard_batches(batches: Sequence[Batch], num_processes: int, rank: int) -> list[Batch]:
    """Process `rank`'s share of `batches`: a contiguous run of whole batches, balanced by image count.

    A batch goes to the process whose equal share of the images, `[r, r + 1) * total / num_processes`,
    holds the batch's middle image, so the shares follow one another in order (concatenated in rank order
    they give back `batches`) and each holds `total / num_processes` images give or take a batch. A process
    may get no batch when there are fewer batches than processes.
    """
    if not 0 <= rank < num_processes:
        raise ValueError(f"rank must lie in [0, {num_processes}); got {rank}.")
    total = sum(len(batch) for batch in batches)
    share: list[Batch] = []
    start = 0
    for batch in batches:
        if (2 * start + len(batch)) * num_processes // (2 * max(total, 1)) == rank:
            share.append(batch)
        start += len(batch)
    return share


__all__ = ["fixed_batches", "shard_batches"]
