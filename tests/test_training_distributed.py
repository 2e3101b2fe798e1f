"""`train.py` under `torchrun` with two CPU processes (gloo): sharded data, one writer, identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from moeclip_hf import MoECLIPModel
from moeclip_hf.training import verify_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from train_and_digest import REPOSITORY, trainable_digest  # noqa: E402


def test_two_processes_train_on_shards_and_end_with_identical_weights(tmp_path):
    output, digests = tmp_path / "run", tmp_path / "digests"
    digests.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(Path(__file__).with_name("train_and_digest.py")), str(digests),
        "--clip", "tiny", "--dataset", "synthetic", "--max-steps", "3", "--output-dir", str(output),
        "--data-root", str(tmp_path / "data"), "--synthetic-images-per-category", "4", "--synthetic-image-size", "64",
        "--report-to", "none",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPOSITORY)}
    finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    # 16 images, 2 per process and step: 4 steps per epoch when each process reads half of every batch.
    assert "16 images of 4 class(es), 2 process(es): 3 steps of 4 per epoch" in finished.stdout
    rank_digests = {path.name: path.read_text() for path in digests.iterdir()}
    assert sorted(rank_digests) == ["rank-0.txt", "rank-1.txt"]
    assert len(set(rank_digests.values())) == 1
    checkpoint = output / "checkpoints" / "step-00000003"
    assert verify_checkpoint(checkpoint) is None
    random_states = sorted(path.name for path in checkpoint.glob("random_states_*"))
    assert random_states == ["random_states_0.pkl", "random_states_1.pkl"]  # one per process
    saved = MoECLIPModel.from_pretrained(output / "final")
    saved.freeze_clip()
    assert trainable_digest(saved) == rank_digests["rank-0.txt"]
