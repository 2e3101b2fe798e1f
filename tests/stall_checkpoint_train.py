"""Run `train.py`, but stall half-way through writing one checkpoint file, so that a test can SIGKILL it there.

    python tests/stall_checkpoint_train.py STEP READY_FILE <train.py arguments>

Training runs exactly as `train.py` runs it, until the checkpoint of step STEP writes its optimizer state: half of
that file's bytes reach the disk, READY_FILE is created and the process sleeps inside the write. At that moment the
staging folder `checkpoints/.tmp-step-NNNNNNNN/` holds the model folder and the half-written file, and neither
the manifest nor the published `step-NNNNNNNN/` exists. Nothing of the package is replaced: only Accelerate's
file writer is wrapped. The process computes with one thread, as the in-process runs of
tests/test_interruption.py do, so that both run the same arithmetic.
"""

import io
import runpy
import sys
from pathlib import Path

import accelerate.checkpointing
import torch
from stalling import write_half_and_wait_to_be_killed

REPOSITORY = Path(__file__).resolve().parents[1]
STALLED_FILE = "optimizer.bin"


def main() -> None:
    step, ready = int(sys.argv[1]), Path(sys.argv[2])
    staging = f".tmp-step-{step:08d}"
    write = accelerate.checkpointing.save

    def stalling_write(obj, path, *args, **kwargs):
        path = Path(path)
        if path.parent.name != staging or path.name != STALLED_FILE:
            return write(obj, path, *args, **kwargs)
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        write_half_and_wait_to_be_killed(path, buffer.getvalue(), ready)

    accelerate.checkpointing.save = stalling_write
    torch.set_num_threads(1)
    sys.argv = [str(REPOSITORY / "train.py"), *sys.argv[3:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
