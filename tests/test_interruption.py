"""Interrupted work loses nothing, and the same seed gives the same bits.

- A training process SIGKILLed in the middle of writing a checkpoint file leaves only a staging folder; `--resume`
  continues from the previous complete checkpoint and ends with bitwise the weights, and exactly the loss history,
  of the run that was never interrupted.
- A newest checkpoint whose bytes changed after it was written (same size, so only the checksum can tell) is
  detected, a warning names the problem, and the previous checkpoint is used.
- Same seed, same data, same machine: two CPU runs write byte-identical weights and checkpoints.

Already in tests/test_training.py: a truncated newest checkpoint with a half-written staging folder
(`test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one`) and an exception in the middle of a step
(`test_a_killed_run_resumes_to_the_same_weights`).

Everything trains the tiny offline CLIP on two synthetic classes of four 64 px images, one thread, on CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from moeclip_hf.training import DataArguments, ModelArguments, TrainingArguments, train, verify_checkpoint
from moeclip_hf.training.checkpointing import MANIFEST_NAME, list_checkpoints

HELPER = Path(__file__).with_name("stall_checkpoint_train.py")
CLASSES = ["marble", "tablet"]
#: Six steps over three epochs of two batches, a checkpoint every two steps.
MAX_STEPS, SAVE_STEPS = 6, 2
#: The checkpoint the killed run is writing when it dies.
KILLED_AT = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def run_arguments(data_root: Path, output: Path, **training) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    data = DataArguments(
        dataset="synthetic", data_root=str(data_root), classes=CLASSES,
        synthetic_images_per_category=4, synthetic_image_size=64,
    )  # fmt: skip
    options = {"max_steps": MAX_STEPS, "save_steps": SAVE_STEPS, "report_to": ["none"], "logging_steps": 1, **training}
    return ModelArguments(clip="tiny"), data, TrainingArguments(output_dir=str(output), **options)


def command_line(data_root: Path, output: Path) -> list[str]:
    """`train.py` flags for exactly the arguments of `run_arguments(data_root, output)`."""
    return [
        "--clip", "tiny", "--dataset", "synthetic", "--data-root", str(data_root), "--classes", *CLASSES,
        "--synthetic-images-per-category", "4", "--synthetic-image-size", "64", "--output-dir", str(output),
        "--max-steps", str(MAX_STEPS), "--save-steps", str(SAVE_STEPS), "--report-to", "none", "--logging-steps", "1",
    ]  # fmt: skip


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_bitwise_equal(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert different == []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    return train(*run_arguments(data_root, tmp_path_factory.mktemp("uninterrupted")))


# ------------------------------------------------------------------------------------------------ determinism


def test_the_same_seed_gives_byte_identical_weights_and_checkpoints_on_cpu(tmp_path, data_root, uninterrupted):
    again = train(*run_arguments(data_root, tmp_path))
    first, second = uninterrupted.model_path, again.model_path
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    assert_bitwise_equal(weights(first), weights(second))
    assert again.loss_history == uninterrupted.loss_history
    for ours, theirs in zip(list_checkpoints(tmp_path / "checkpoints"), list_checkpoints(first.parent / "checkpoints")):
        for name in ("model/model.safetensors", "trainer_state.json"):
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), f"{ours.name}/{name}"
    # Equal because reproducible, not because nothing trained: the weights moved since the first checkpoint.
    moved = weights(list_checkpoints(tmp_path / "checkpoints")[0] / "model")
    assert [name for name in moved if not torch.equal(moved[name], weights(second)[name])]


# ------------------------------------------------------------------------------------------- SIGKILL mid-save


def start_stalling_run(data_root: Path, output: Path, ready: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, str(HELPER), str(KILLED_AT), str(ready), *command_line(data_root, output)]
    with open(log, "wb") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_for(ready: Path, process: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"the run ended (code {process.returncode}) before its checkpoint write:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"the run did not reach the checkpoint write of step {KILLED_AT} in {timeout} s")
        time.sleep(0.05)


def test_a_run_killed_while_writing_a_checkpoint_resumes_to_bitwise_the_same_weights(
    tmp_path, data_root, uninterrupted, capsys
):
    output, ready, log = tmp_path / "run", tmp_path / "ready", tmp_path / "train.log"
    staging = output / "checkpoints" / f".tmp-step-{KILLED_AT:08d}"
    process = start_stalling_run(data_root, output, ready, log)
    try:
        wait_for(ready, process, log)
        on_disk = sorted(path.relative_to(staging).as_posix() for path in staging.rglob("*") if path.is_file())
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # Killed inside the write: the model folder is there, the optimizer state half-written, no manifest.
    assert "model/model.safetensors" in on_disk and "optimizer.bin" in on_disk
    assert MANIFEST_NAME not in on_disk and "trainer_state.json" not in on_disk
    assert [path.name for path in list_checkpoints(output / "checkpoints")] == [f"step-{SAVE_STEPS:08d}"]
    assert not (output / "final").exists()

    resumed = train(*run_arguments(data_root, output, resume=True))
    previous = output / "checkpoints" / f"step-{SAVE_STEPS:08d}"
    assert f"Resuming from {previous} (step {SAVE_STEPS})." in capsys.readouterr().out
    assert not staging.exists()
    assert resumed.global_step == MAX_STEPS
    assert [verify_checkpoint(folder) for folder in list_checkpoints(output / "checkpoints")] == [None] * 3
    assert_bitwise_equal(weights(resumed.model_path), weights(uninterrupted.model_path))
    assert resumed.loss_history == uninterrupted.loss_history


# ------------------------------------------------------------------------------------ silently changed bytes


def test_a_checkpoint_whose_bytes_changed_is_skipped_with_a_warning(tmp_path, data_root, uninterrupted, caplog):
    output = tmp_path / "run"
    shutil.copytree(uninterrupted.model_path.parent, output)
    shutil.rmtree(output / "final")
    newest = list_checkpoints(output / "checkpoints")[-1]
    optimizer_state = newest / "optimizer.bin"
    data = bytearray(optimizer_state.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit: same size, only the checksum sees it
    optimizer_state.write_bytes(bytes(data))
    arguments = json.loads((output / "training_args.json").read_text())
    arguments["output_dir"] = str(output)
    (output / "training_args.json").write_text(json.dumps(arguments))

    with caplog.at_level(logging.WARNING):
        resumed = train(*run_arguments(data_root, output, resume=True))
    assert f"{newest} is unusable (optimizer.bin does not match its checksum); falling back" in caplog.text
    assert verify_checkpoint(newest) is None  # written again by the resumed run
    assert_bitwise_equal(weights(resumed.model_path), weights(uninterrupted.model_path))
