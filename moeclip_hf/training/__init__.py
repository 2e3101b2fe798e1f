"""Training MoECLIP with Accelerate: arguments, the loop, and checkpoints that resume exactly.

```python
from moeclip_hf.training import DataArguments, ModelArguments, TrainingArguments, train

result = train(
    ModelArguments(clip="tiny"),
    DataArguments(dataset="synthetic"),
    TrainingArguments(output_dir="runs/demo", max_steps=300),
)
result.model_path  # runs/demo/final: MoECLIPModel.from_pretrained / MoECLIPProcessor.from_pretrained
```

The command line is the repository's `train.py` (`python train.py`, `accelerate launch train.py`,
`torchrun ... train.py`): it parses the arguments with `parse_args` and calls `train`.

Modules, in the order a run uses them: `arguments` (the three dataclasses), `run_folder` (what a run writes and
the policy that keeps runs apart), `model` (the model to train), `data` (rows, order, augmentation, batches),
`loop` (Accelerate, the step, logging), `checkpointing` (complete-or-absent checkpoints, resumption).
"""

from .arguments import DataArguments, ModelArguments, TrainingArguments, argument_parser, parse_args
from .checkpointing import CHECKPOINTS_DIR, TrainerState, find_resumable_checkpoint, list_checkpoints, verify_checkpoint
from .errors import TrainingConfigurationError, TrainingDataError
from .loop import TrainResult, train
from .model import build_model_and_processor

__all__ = [
    "CHECKPOINTS_DIR",
    "DataArguments",
    "ModelArguments",
    "TrainResult",
    "TrainerState",
    "TrainingArguments",
    "TrainingConfigurationError",
    "TrainingDataError",
    "argument_parser",
    "build_model_and_processor",
    "find_resumable_checkpoint",
    "list_checkpoints",
    "parse_args",
    "train",
    "verify_checkpoint",
]
