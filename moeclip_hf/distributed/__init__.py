"""Several processes for one command: `accelerate launch` / `torchrun` for evaluation and batch inference.

`processes` names the few collective operations the commands need and the group the launcher started,
`sharding` splits fixed batches between processes, `agreement` checks that every process loaded the same
model and listed the same data.
"""

from .agreement import RanksDisagreeError, model_fingerprint, require_agreement, sequence_fingerprint
from .processes import ProcessGroup, SingleProcess, TorchProcessGroup, gather_rows, launched_processes
from .sharding import fixed_batches, shard_batches

__all__ = [
    "ProcessGroup",
    "RanksDisagreeError",
    "SingleProcess",
    "TorchProcessGroup",
    "fixed_batches",
    "gather_rows",
    "launched_processes",
    "model_fingerprint",
    "require_agreement",
    "sequence_fingerprint",
    "shard_batches",
]
