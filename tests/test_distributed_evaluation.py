"""Evaluation over several processes: fixed batches shared without duplicates, accumulators gathered exactly
(uneven shares included), processes that disagree stopped with an error, and `torchrun --nproc_per_node 2`
writing the results.json of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main
from moeclip_hf.data.synthetic import generate
from moeclip_hf.distributed import (
    RanksDisagreeError,
    fixed_batches,
    gather_rows,
    model_fingerprint,
    require_agreement,
    shard_batches,
)
from moeclip_hf.evaluation.accumulator import INDUSTRIAL_SCORE_FUSION_WEIGHT, ClassMetricAccumulator
from moeclip_hf.evaluation.distributed import gather_accumulator
from moeclip_hf.testing import tiny_config, tiny_processor

sys.path.insert(0, str(Path(__file__).parent))
from process_threads import run_ranks  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ sharding


@pytest.mark.parametrize("num_processes", [1, 2, 3, 5, 7])
def test_each_process_gets_a_contiguous_balanced_run_of_whole_batches(num_processes):
    batches = fixed_batches(range(23), 4)
    assert [len(batch) for batch in batches] == [4, 4, 4, 4, 4, 3]
    shares = [shard_batches(batches, num_processes, rank) for rank in range(num_processes)]
    assert [batch for share in shares for batch in share] == batches  # in order, none twice, none left out
    for share in shares:
        assert abs(sum(map(len, share)) - 23 / num_processes) <= 4  # give or take one batch


def test_with_fewer_batches_than_processes_some_processes_score_nothing():
    batches = fixed_batches(range(5), 4)
    assert [shard_batches(batches, 3, rank) for rank in range(3)] == [[], [[0, 1, 2, 3]], [[4]]]


# ------------------------------------------------------------------------------------------------ gathering


def test_gather_rows_brings_every_process_rows_to_the_main_one_unchanged():
    shares = [torch.tensor([[True, False]]), torch.zeros((0, 2), dtype=torch.bool), torch.tensor([[False, False], [True, True]])]
    outcomes = run_ranks(3, lambda group: gather_rows(group, shares[group.rank]))
    assert outcomes[1] is None and outcomes[2] is None
    assert [part.tolist() for part in outcomes[0]] == [share.tolist() for share in shares]
    assert all(part.dtype == torch.bool for part in outcomes[0])


def class_values(num_images: int = 11, size: int = 12) -> dict[str, torch.Tensor]:
    """One class's scores, labels, maps (with ties) and masks (with several regions), as a runner adds them."""
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand((num_images, size, size), generator=generator)
    maps[:, :3] = maps[:, :3].mul(4).round().div(4)  # tied pixel values
    masks = torch.zeros((num_images, size, size), dtype=torch.bool)
    masks[1::2, 2:5, 2:6] = True
    masks[1::4, 8:11, 7:9] = True
    return {
        "image_scores": torch.rand(num_images, generator=generator, dtype=torch.float64),
        "image_labels": masks.flatten(1).any(1),
        "pixel_maps": maps + masks * 0.3,
        "pixel_masks": masks,
    }


@pytest.mark.parametrize("shares", [(5, 0, 6), (1, 7, 3)], ids=["an-empty-rank", "uneven"])
def test_the_gathered_accumulator_equals_the_single_process_accumulator(shares):
    values = class_values()
    single = ClassMetricAccumulator()
    for start in range(0, 11, 4):  # one process, batches of 4
        single.update(**{name: tensor[start : start + 4] for name, tensor in values.items()})
    bounds = torch.tensor([0, *shares]).cumsum(0).tolist()

    def rank_work(group):
        accumulator = ClassMetricAccumulator()
        first, end = bounds[group.rank], bounds[group.rank + 1]
        for start in range(first, end, 2):  # this rank's share, in batches of 2
            accumulator.update(**{name: tensor[start : min(start + 2, end)] for name, tensor in values.items()})
        return gather_accumulator(accumulator, group)

    gathered, *others = run_ranks(3, rank_work)
    assert others == [None, None]
    assert gathered.num_images == single.num_images == 11
    for name, tensor in single.stored().items():
        assert torch.equal(gathered.stored()[name], tensor), name
    protocol = {"normalize_maps": True, "score_fusion_weight": INDUSTRIAL_SCORE_FUSION_WEIGHT}
    assert gathered.compute(**protocol) == single.compute(**protocol)  # the same floats, not approximately
    assert gathered.compute() == single.compute()
    assert all(value is not None for value in single.compute().values())


# ------------------------------------------------------------------------------------------------ agreement


def test_processes_that_disagree_are_stopped_on_every_process_with_the_fact_named():
    digests = ["a" * 64, "a" * 64, "b" * 64]
    outcomes = run_ranks(3, lambda group: require_agreement(group, {"model (config and weights)": digests[group.rank]}))
    assert all(isinstance(outcome, RanksDisagreeError) for outcome in outcomes)
    message = str(outcomes[0])
    assert "process(es) 2 of 3 see a different model (config and weights) than process 0" in message
    assert "check --model and the data paths on every machine" in message
    assert run_ranks(3, lambda group: require_agreement(group, {"model": "a" * 64})) == [None, None, None]


def test_the_model_fingerprint_sees_one_changed_weight_and_nothing_else():
    torch.manual_seed(0)
    model = MoECLIPModel(tiny_config())
    again = MoECLIPModel(tiny_config())
    again.load_state_dict(model.state_dict())
    assert model_fingerprint(model) == model_fingerprint(again)
    with torch.no_grad():
        next(again.parameters()).view(-1)[0] += 1e-6
    assert model_fingerprint(model) != model_fingerprint(again)


# ------------------------------------------------------------------------------------------------ torchrun


def test_torchrun_with_two_processes_writes_the_single_process_results(tmp_path, one_torch_thread, capsys):
    data, model = tmp_path / "data", tmp_path / "model"
    generate(data, categories=["stripes", "tablet", "washer"], images_per_category=5, seed=0, image_size=64)  # odd
    torch.manual_seed(0)
    MoECLIPModel(tiny_config()).save_pretrained(model)
    tiny_processor().save_pretrained(model)
    arguments = ["evaluate", "--model", str(model), "--dataset", "mvtec", "--data-root", str(data),
                 "--batch-size", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*arguments, "--output", str(tmp_path / "one")]) == 0
    capsys.readouterr()

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "moeclip_hf.cli", *arguments, "--output", str(tmp_path / "two")]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPOSITORY)}
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert finished.stdout.count("## mvtec (moeclip protocol)") == 1  # the main process prints, once

    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["datasets"] == one["datasets"]
    assert (one["num_processes"], one["images_per_rank"]) == (1, [15])
    # Batches of [2, 2, 1] images per class: the first process scores stripes and tablet's first batch, the
    # second the rest of tablet and washer, so tablet's maps come from both processes.
    assert (two["num_processes"], two["images_per_rank"]) == (2, [7, 8])
    assert (tmp_path / "two" / "results_mvtec.csv").read_text() == (tmp_path / "one" / "results_mvtec.csv").read_text()
