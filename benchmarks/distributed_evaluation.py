"""Wall time of `moeclip evaluate` and of a `moeclip detect` table with one process and with two, on the
synthetic benchmark.

    python benchmarks/distributed_evaluation.py [--repeats 3] [--images-per-category 16] [--image-size 128]

Writes the synthetic benchmark (8 categories, MVTec-AD layout) and the demo model (`demo_config`, not
pretrained) to a temporary folder, then runs each command as a user would, whole (start, model load,
scoring, metrics, writing), in three set-ups on two cores, alternating: one process with one thread, one
process with two threads, and `torchrun --standalone --nproc_per_node 2` with one thread per process. It
reports the median wall time of each and checks that the two-process run wrote exactly what the
one-process, one-thread run wrote (same arithmetic: results.json's datasets, the detect table); against the
two-thread run it reports the largest score difference (a matrix product sums in another order with
another thread count). The last line printed is the whole result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from moeclip_hf import MoECLIPModel
from moeclip_hf.data.synthetic import generate
from moeclip_hf.testing import demo_config, tiny_processor

REPOSITORY = Path(__file__).resolve().parents[1]


def commands(folder: Path, output: str) -> dict[str, list[str]]:
    common = ["--model", str(folder / "model"), "--batch-size", "8", "--device", "cpu", "--quiet"]
    return {
        "evaluate": ["evaluate", "--dataset", "mvtec", "--data-root", str(folder / "data"), *common,
                     "--output", str(folder / output)],
        "detect": ["detect", str(folder / "data"), "--class-name", "object", *common, "--overwrite",
                   "--output", str(folder / output / "table.csv")],
    }  # fmt: skip


def run(arguments: list[str], processes: int, threads: int) -> float:
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPOSITORY), "CUDA_VISIBLE_DEVICES": "",
                   "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    start = time.perf_counter()
    finished = subprocess.run([*launcher, "-m", "moeclip_hf.cli", *arguments], env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(finished.stderr[-3000:])
    return elapsed


#: (name, processes, threads per process)
SETUPS = (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 processes, 1 thread each", 2, 1))


def table_scores(folder: Path) -> dict[str, float]:
    return {row["path"]: row["score"] for row in map(json.loads, (folder / "table.jsonl").read_text().splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images-per-category", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        generate(folder / "data", images_per_category=args.images_per_category, seed=0, image_size=args.image_size)
        torch.manual_seed(0)
        MoECLIPModel(demo_config(image_size=args.image_size)).save_pretrained(folder / "model")
        tiny_processor(args.image_size).save_pretrained(folder / "model")
        times: dict[str, dict[str, list[float]]] = {name: {setup: [] for setup, _, _ in SETUPS} for name in ("evaluate", "detect")}
        for _ in range(args.repeats):
            for setup, processes, threads in SETUPS:
                for name, arguments in commands(folder, f"out-{processes}-{threads}").items():
                    times[name][setup].append(run(arguments, processes, threads))
        results = {key: json.loads((folder / f"out-{key}" / "results.json").read_text()) for key in ("1-1", "1-2", "2-1")}
        scores = {key: table_scores(folder / f"out-{key}") for key in ("1-1", "1-2", "2-1")}
        report = {
            "images": 8 * args.images_per_category,
            "image_size": args.image_size,
            "repeats": args.repeats,
            "images_per_rank": results["2-1"]["images_per_rank"],
            "two_processes_equal_one": results["2-1"]["datasets"] == results["1-1"]["datasets"] and scores["2-1"] == scores["1-1"],
            "two_threads_max_score_difference": max(abs(scores["1-2"][path] - score) for path, score in scores["1-1"].items()),
        }
        print("| command | " + " | ".join(f"{setup} (s)" for setup, _, _ in SETUPS) + " | speed-up of 2 processes over the faster single process |")
        print("|---" * (len(SETUPS) + 2) + "|")
        for name, by_setup in times.items():
            medians = [statistics.median(by_setup[setup]) for setup, _, _ in SETUPS]
            print(f"| {name} | " + " | ".join(f"{median:.1f}" for median in medians) + f" | {min(medians[:2]) / medians[2]:.2f}x |")
            report[name] = by_setup
        print(json.dumps(report))


if __name__ == "__main__":
    main()
