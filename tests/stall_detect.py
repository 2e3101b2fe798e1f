"""Run `moeclip detect`, but stall half-way through writing one batch's rows, so that a test can SIGKILL it there.

    python tests/stall_detect.py BATCH READY_FILE <moeclip detect arguments>

Batches are written as `moeclip detect` writes them until batch BATCH (0-based, in writing order): its first row
is written whole, then half of its second row's JSON line reaches the file, READY_FILE is created and the process
sleeps inside the write. Nothing of the package is replaced: only the table's row writer is wrapped. The process
computes with one thread, as the in-process runs of tests/test_batch_detection.py do.
"""

import sys
from pathlib import Path

import torch
from stalling import write_half_and_wait_to_be_killed

from moeclip_hf.cli import main
from moeclip_hf.inference.table import RowWriter


def stall_in_batch(batch: int, ready: Path) -> None:
    append = RowWriter.append
    written = 0

    def stalling_append(self: RowWriter, rows) -> None:
        nonlocal written
        rows = list(rows)
        if written == batch:
            append(self, rows[:1])
            write_half_and_wait_to_be_killed(self.jsonl_path, rows[1].to_json().encode(), ready, append=True)
        written += 1
        append(self, rows)

    RowWriter.append = stalling_append


if __name__ == "__main__":
    stall_in_batch(int(sys.argv[1]), Path(sys.argv[2]))
    torch.set_num_threads(1)
    sys.exit(main(["detect", *sys.argv[3:]]))
