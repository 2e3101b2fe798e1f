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

The command line (`train.py`, `accelerate launch train.py`, `torchrun ... train.py`) calls `main`.
"""

from .arguments import DataArguments, ModelArguments, TrainingArguments, argument_parser, parse_args
from .checkpointing import TrainerState, find_resumable_checkpoint, verify_checkpoint
from .loop import TrainingConfigurationError, TrainingDataError, TrainResult, build_model_and_processor, main, train

__all__ = [
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
    "main",
    "parse_args",
    "train",
    "verify_checkpoint",
]
