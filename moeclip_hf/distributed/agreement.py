"""Do all processes score the same model on the same data? A digest per fact, compared across processes.

A multi-process run whose processes loaded different weights (a stale copy on one machine) or listed
different files (another mount, a folder still being copied) would still produce a table; these checks
turn that into an error before any image is scored. Each fact is reduced to a SHA-256 digest on every
process, the digests are all-gathered, and every process raises the same `RanksDisagreeError` naming
the fact and the processes that differ from the main one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence

import torch
from transformers import PreTrainedModel

from .processes import ProcessGroup

_DIGEST_BYTES = hashlib.sha256().digest_size


class RanksDisagreeError(ValueError):
    """Processes of one run loaded different models or listed different data."""


def model_fingerprint(model: PreTrainedModel) -> str:
    """SHA-256 of a model's configuration and of every tensor of its state (name, dtype, shape, bytes)."""
    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def sequence_fingerprint(items: Iterable[object]) -> str:
    """SHA-256 of a sequence of JSON-serialisable items, in order."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def relative_paths(paths: Sequence[str | None]) -> list[str | None]:
    """`paths` relative to the folder they share, so that machines mounting the data elsewhere agree."""
    present = [os.path.abspath(path) for path in paths if path]
    if not present:
        return list(paths)
    root = os.path.commonpath([os.path.dirname(path) for path in present])
    return [path and os.path.relpath(os.path.abspath(path), root) for path in paths]


def require_agreement(group: ProcessGroup, fingerprints: Mapping[str, str]) -> None:
    """Raise `RanksDisagreeError` on every process unless all processes computed the same fingerprints.

    Args:
        group: the processes of the run; a single process agrees with itself at no cost.
        fingerprints: what each digest describes ("the model (config and weights)") -> its hex SHA-256;
            the same keys, in the same order, on every process.
    """
    if group.num_processes == 1 or not fingerprints:
        return
    mine = torch.tensor([list(bytes.fromhex(value)) for value in fingerprints.values()], dtype=torch.uint8)
    if mine.shape[1] != _DIGEST_BYTES:
        raise ValueError(f"fingerprints must be hex SHA-256 digests; got {list(fingerprints.values())}")
    everyone = group.all_gather(mine)
    problems = []
    for position, what in enumerate(fingerprints):
        main = everyone[0][position]
        differing = [rank for rank, digests in enumerate(everyone) if not torch.equal(digests[position], main)]
        if differing:
            problems.append(
                f"process(es) {', '.join(map(str, differing))} of {group.num_processes} see a different {what} than "
                f"process 0 (SHA-256 {bytes(everyone[differing[0]][position].tolist()).hex()[:12]}... vs "
                f"{bytes(main.tolist()).hex()[:12]}...)"
            )
    if problems:
        raise RanksDisagreeError(
            "the processes of this run disagree: " + "; ".join(problems) + ". Every process must load the same "
            "model and read the same data: check --model and the data paths on every machine (the same files "
            "under each path; outputs on a folder all machines share)."
        )


__all__ = ["RanksDisagreeError", "model_fingerprint", "relative_paths", "require_agreement", "sequence_fingerprint"]
