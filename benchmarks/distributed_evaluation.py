"""Wall time of `moeclip evaluate` and of a `moeclip detect` table with one process and with two, on the
synthetic benchmark.

    python benchmarks/distributed_evaluation.py [--repeats 3] [--images-per-category 16] [--image-size 128]

Writes the synthetic benchmark (8 categories, MVTec-AD layout) and the demo model (`presets`/`testing`
`demo_config`, not pretrained) to a temporary folder, then runs each command as a user would, whole (start,
model load, scoring, metrics, writing), alternating: one process with OMP_NUM_THREADS=2, then
`torchrun --standalone --nproc_per_node 2` with one thread per process, the same two cores. It reports the
median wall time of each, their ratio, and checks that the two runs wrote the same results (results.json's
datasets; the detect table's rows). The last line printed is the whole result as JSON.
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


def run(arguments: list[str], processes: int) -> float:
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": str(2 // processes), "PYTHONPATH": str(REPOSITORY),
                   "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    start = time.perf_counter()
    finished = subprocess.run([*launcher, "-m", "moeclip_hf.cli", *arguments], env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(finished.stderr[-3000:])
    return elapsed


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
        times: dict[str, dict[int, list[float]]] = {name: {1: [], 2: []} for name in ("evaluate", "detect")}
        for _ in range(args.repeats):
            for processes in (1, 2):
                for name, arguments in commands(folder, f"out-{processes}").items():
                    times[name][processes].append(run(arguments, processes))
        one, two = (json.loads((folder / f"out-{n}" / "results.json").read_text()) for n in (1, 2))
        tables = [(folder / f"out-{n}" / "table.jsonl").read_text().replace(f"out-{n}", "out") for n in (1, 2)]
        report = {
            "images": 8 * args.images_per_category,
            "image_size": args.image_size,
            "repeats": args.repeats,
            "images_per_rank": two["images_per_rank"],
            "same_results": one["datasets"] == two["datasets"],
            "same_table": tables[0] == tables[1],
        }
        print("| command | 1 process (s) | 2 processes (s) | speed-up |\n|---|---|---|---|")
        for name, by_processes in times.items():
            medians = {n: statistics.median(values) for n, values in by_processes.items()}
            print(f"| {name} | {medians[1]:.1f} | {medians[2]:.1f} | {medians[1] / medians[2]:.2f}x |")
            report[name] = {"one_process_s": by_processes[1], "two_processes_s": by_processes[2]}
        print(json.dumps(report))


if __name__ == "__main__":
    main()
