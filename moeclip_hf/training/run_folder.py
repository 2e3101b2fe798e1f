"""The run folder of `train.py`: what it holds, and the policy that keeps two runs from mixing in one.

```
training_args.json   all arguments; itself a valid argument file
checkpoints/         see `moeclip_hf.training.checkpointing`
final/               the trained model and processor
logs/                tracker logs
synthetic/           generated data of `--dataset synthetic` (kept by --overwrite)
```
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .arguments import TrainingArguments, differing_fields
from .checkpointing import CHECKPOINTS_DIR, list_checkpoints, remove_staging_folders
from .errors import TrainingConfigurationError

TRAINING_ARGS_NAME = "training_args.json"
FINAL_MODEL_DIR = "final"
LOGS_DIR = "logs"
SYNTHETIC_DIR = "synthetic"


def check_output_dir(output_dir: Path, arguments: dict[str, Any], training_args: TrainingArguments) -> list[str]:
    """Refuse to mix two runs in one folder, before anything is loaded or written.

    A folder whose `training_args.json` differs from these arguments holds another run; one with the same
    arguments and checkpoints holds this run already. Both need `--resume` or `--overwrite`. Returns the
    arguments that a resumed run changes.
    """
    saved_path = output_dir / TRAINING_ARGS_NAME
    if training_args.overwrite or not saved_path.is_file():
        return []
    differences = differing_fields(json.loads(saved_path.read_text()), arguments)
    if training_args.resume:
        return differences
    if differences:
        raise TrainingConfigurationError(
            f"{output_dir} holds another run: its {TRAINING_ARGS_NAME} differs in {', '.join(differences)}. "
            "Pass --resume to continue it with these arguments, --overwrite to start over, or another --output-dir."
        )
    if list_checkpoints(output_dir / CHECKPOINTS_DIR) or (output_dir / FINAL_MODEL_DIR).exists():
        raise TrainingConfigurationError(
            f"{output_dir} already holds checkpoints of this run: pass --resume to continue it or --overwrite "
            "to start over."
        )
    return []


def initialise_output_dir(output_dir: Path, arguments: dict[str, Any], overwrite: bool) -> None:
    """Clear an overwritten run's artefacts (generated data is kept) and record these arguments."""
    if overwrite:
        for name in (CHECKPOINTS_DIR, FINAL_MODEL_DIR, LOGS_DIR):
            shutil.rmtree(output_dir / name, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_staging_folders(output_dir / CHECKPOINTS_DIR)
    (output_dir / TRAINING_ARGS_NAME).write_text(json.dumps(arguments, indent=2))


__all__ = [
    "FINAL_MODEL_DIR",
    "LOGS_DIR",
    "SYNTHETIC_DIR",
    "TRAINING_ARGS_NAME",
    "check_output_dir",
    "initialise_output_dir",
]
