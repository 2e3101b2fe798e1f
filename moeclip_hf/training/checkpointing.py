"""Checkpoints that are complete or absent, and resumption from the newest complete one.

A checkpoint is the folder `checkpoints/step-NNNNNNNN/` of a run:

```
model/                  save_pretrained folder (config.json, model.safetensors) + the processor's files:
                        `MoECLIPModel.from_pretrained` and `MoECLIPProcessor.from_pretrained` load it
optimizer.bin           \
scheduler.bin            } written by `Accelerator.save_state` (one random_states file per process)
random_states_0.pkl     /
trainer_state.json      step, data position (epoch, batches consumed in it) and the logged losses
manifest.json           written last: the step, and the size and SHA-256 of every other file
```

Every process writes into a hidden `.tmp-step-NNNNNNNN/` folder; once all are done, the main process fsyncs
the files, writes the manifest and renames the folder to its final name, an atomic step on POSIX file
systems. A run killed mid-save therefore leaves a `.tmp-*` folder that is never taken for a checkpoint, and
a checkpoint damaged later (a truncated copy, a full disk) fails its manifest check, so resumption falls back
to the previous one with a warning.

The model weights are stored once, as safetensors, in `model/`: the save and load hooks registered on the
Accelerator take the model out of `save_state`/`load_state`, which would otherwise write a second copy.

What resumption deserialises: the weights through safetensors, the trainer state and manifest as JSON, and
the optimiser, scheduler and RNG states through Accelerate's `load_state`, which calls `torch.load` with
`weights_only=True` (plus numpy's array reconstruction as the only allowed global).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from transformers.utils import logging as transformers_logging

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
MODEL_DIR = "model"
MANIFEST_NAME = "manifest.json"
TRAINER_STATE_NAME = "trainer_state.json"
#: Prefix of folders still being written; never read as checkpoints.
STAGING_PREFIX = ".tmp-"
_MANIFEST_FORMAT = 1
_HASH_CHUNK = 1 << 20


@dataclass
class TrainerState:
    """Where a run stands: enough, with the Accelerate state, to continue it exactly.

    `batches_in_epoch` counts the batches of epoch `epoch` already consumed by each process; resumption skips
    them with `Accelerator.skip_first_batches`. `num_processes` and `batch_size` record the geometry that
    position refers to.
    """

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    num_processes: int = 1
    batch_size: int = 1
    loss_history: list[dict[str, float]] = field(default_factory=list)

    def advance_batch(self, batches_per_epoch: int) -> None:
        """Count one consumed batch, moving on to the next epoch after its last batch."""
        self.batches_in_epoch += 1
        if self.batches_in_epoch >= batches_per_epoch:
            self.epoch += 1
            self.batches_in_epoch = 0

    def save(self, folder: Path) -> None:
        (folder / TRAINER_STATE_NAME).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> TrainerState:
        return cls(**json.loads((folder / TRAINER_STATE_NAME).read_text()))


def checkpoint_folder(checkpoints_dir: Path, step: int) -> Path:
    """`checkpoints_dir/step-NNNNNNNN`: zero-padded so that names sort by step."""
    return checkpoints_dir / f"{CHECKPOINT_PREFIX}{step:08d}"


def checkpoint_step(folder: Path) -> int | None:
    """The step in a checkpoint folder's name, None for any other name (staging folders included)."""
    digits = folder.name.removeprefix(CHECKPOINT_PREFIX)
    if not folder.name.startswith(CHECKPOINT_PREFIX) or not digits.isdigit():
        return None
    return int(digits)


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """The published checkpoint folders, oldest first (complete or not: see `verify_checkpoint`)."""
    if not checkpoints_dir.is_dir():
        return []
    folders = [path for path in checkpoints_dir.iterdir() if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(folders, key=checkpoint_step)


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.name != MANIFEST_NAME)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_manifest(folder: Path, step: int) -> None:
    """Flush every file of `folder` to disk, then record its size and SHA-256 in the manifest."""
    files = {}
    for path in _checkpoint_files(folder):
        _fsync(path)
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": file_digest(path)}
    manifest = folder / MANIFEST_NAME
    with open(manifest, "w") as handle:
        json.dump({"format": _MANIFEST_FORMAT, "step": step, "files": files}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def verify_checkpoint(folder: Path) -> str | None:
    """Why `folder` is not a usable checkpoint, or None when its manifest vouches for every file."""
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return f"no {MANIFEST_NAME} (the save did not finish)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files, step = manifest["files"], manifest["step"]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable {MANIFEST_NAME}: {error}"
    if step != checkpoint_step(folder):
        return f"{MANIFEST_NAME} is for step {step}"
    for name in (TRAINER_STATE_NAME, f"{MODEL_DIR}/config.json"):
        if name not in files:
            return f"{name} is missing from {MANIFEST_NAME}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, {expected['size']} expected"
        if file_digest(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None


def find_resumable_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest checkpoint that passes `verify_checkpoint`; each newer, damaged one is skipped with a warning."""
    for folder in reversed(list_checkpoints(checkpoints_dir)):
        problem = verify_checkpoint(folder)
        if problem is None:
            return folder
        logger.warning("Checkpoint %s is unusable (%s); falling back to the previous one.", folder, problem)
    return None


def _publish(staging: Path, final: Path) -> None:
    """Rename a finished staging folder to its final name, replacing an older folder of that name."""
    if final.exists():
        retired = final.with_name(f"{STAGING_PREFIX}replaced-{final.name}")
        shutil.rmtree(retired, ignore_errors=True)
        final.rename(retired)
        shutil.rmtree(retired)
    staging.rename(final)
    _fsync(final.parent)


def remove_staging_folders(parent: Path) -> None:
    """Delete leftovers of saves that a killed run never finished."""
    if parent.is_dir():
        for path in parent.iterdir():
            if path.name.startswith(STAGING_PREFIX) and path.is_dir():
                shutil.rmtree(path)


def prune_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints."""
    for folder in list_checkpoints(checkpoints_dir)[:-keep]:
        shutil.rmtree(folder)


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' "Writing model shards" bar, which would break the training progress bar."""
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def save_model_folder(model: torch.nn.Module, processor, folder: Path) -> None:
    """`save_pretrained` of the model (safetensors) and of its processor into one folder."""
    with _quiet_progress_bars():
        model.save_pretrained(folder)
    processor.save_pretrained(folder)


def load_model_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load the safetensors weights of a `save_pretrained` folder (one file or shards) into `model`, strictly."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {folder}")
    state_dict = {}
    for path in files:
        state_dict.update(load_file(path))
    model.load_state_dict(state_dict, strict=True)


def register_model_state_hooks(accelerator: Accelerator, processor) -> None:
    """Store the model of `save_state`/`load_state` as a `save_pretrained` folder instead of `model.safetensors`.

    The folder, with the processor, is what `MoECLIPModel.from_pretrained` loads, so every checkpoint is also a
    usable model, and the weights are written once.
    """

    def save_model(models: list[torch.nn.Module], weights: list[dict], output_dir: str) -> None:
        (model,) = models
        if accelerator.is_main_process:
            save_model_folder(accelerator.unwrap_model(model), processor, Path(output_dir) / MODEL_DIR)
        weights.clear()

    def load_model(models: list[torch.nn.Module], input_dir: str) -> None:
        (model,) = models
        load_model_weights(accelerator.unwrap_model(model), Path(input_dir) / MODEL_DIR)
        models.clear()

    accelerator.register_save_state_pre_hook(save_model)
    accelerator.register_load_state_pre_hook(load_model)


def save_checkpoint(
    accelerator: Accelerator, checkpoints_dir: Path, state: TrainerState, keep: int | None = None
) -> Path:
    """Save the full training state at `state.global_step` as a complete checkpoint; every process calls this.

    `keep` bounds how many checkpoints stay on disk (the newest ones).
    """
    final = checkpoint_folder(checkpoints_dir, state.global_step)
    staging = checkpoints_dir / f"{STAGING_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(staging, safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state.save(staging)
        write_manifest(staging, state.global_step)
        _publish(staging, final)
        if keep is not None:
            prune_checkpoints(checkpoints_dir, keep)
    accelerator.wait_for_everyone()
    return final


def save_final_model(accelerator: Accelerator, model: torch.nn.Module, processor, folder: Path) -> None:
    """Write the trained model and processor to `folder` through a staging folder, on the main process."""
    if accelerator.is_main_process:
        staging = folder.with_name(f"{STAGING_PREFIX}{folder.name}")
        shutil.rmtree(staging, ignore_errors=True)
        save_model_folder(accelerator.unwrap_model(model), processor, staging)
        for path in _checkpoint_files(staging):
            _fsync(path)
        _publish(staging, folder)
    accelerator.wait_for_everyone()


__all__ = [
    "CHECKPOINTS_DIR",
    "MANIFEST_NAME",
    "MODEL_DIR",
    "TRAINER_STATE_NAME",
    "TrainerState",
    "checkpoint_folder",
    "find_resumable_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "register_model_state_hooks",
    "remove_staging_folders",
    "save_checkpoint",
    "save_final_model",
    "verify_checkpoint",
]
