"""Time and memory of `moeclip_hf.evaluation.metrics` against scikit-learn on one big class.

The data: float32 anomaly maps of 500 x 500 pixels (30 M pixels by default, about one
benchmark class at 518 px), a fraction of pixels anomalous and scoring 0.3 higher on
average; "continuous" keeps the scores as drawn, "tied" rounds them to 2 decimals (101
distinct values). Both libraries get the very same numpy arrays.

Time: median of `--repeats` runs, ours and scikit-learn's alternating, in this process.
Memory: each library's calls run once more in a fresh subprocess that builds the same
arrays and warms up on a tiny class; a call's peak is the growth of the process's
resident memory during it (the kernel's high-water mark VmHWM, reset just before the
call through /proc/self/clear_refs, minus VmRSS before the call), with glibc's mmap
threshold fixed so that freed blocks go back to the system at once. That counts numpy
and torch allocations alike, which tracemalloc would not (torch's allocator bypasses it).

    python benchmarks/metrics_speed.py                    # 30 M pixels, several minutes
    python benchmarks/metrics_speed.py --pixels 1000000   # quick

The last line printed is the whole result as JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from sklearn.metrics import precision_recall_curve
from sklearn.metrics import roc_auc_score

from moeclip_hf.evaluation.metrics import auroc
from moeclip_hf.evaluation.metrics import average_precision
from moeclip_hf.evaluation.metrics import f1_max
from moeclip_hf.evaluation.metrics import segmentation_metrics

MAP_SIDE = 500
VARIANTS = ("continuous", "tied")


def sklearn_f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    """F1-max the way anomalib-style code gets it from scikit-learn: the full PR curve."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    denominator = precision + recall
    return float(np.max(2 * precision * recall / np.where(denominator > 0, denominator, 1.0)))


# Each metric as (ours, scikit-learn's); ours take the (N, H, W) arrays, sklearn flat ones.
PAIRED_METRICS: dict[str, tuple[Callable, Callable]] = {
    "auroc": (auroc, lambda scores, labels: roc_auc_score(labels, scores)),
    "average_precision": (average_precision, lambda scores, labels: average_precision_score(labels, scores)),
    "f1_max": (f1_max, sklearn_f1_max),
}
ALL_PIXEL_METRICS = "segmentation_metrics"


def make_class(pixels: int, positive_fraction: float, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Maps (N, 500, 500) float32 and masks bool; N = pixels / 250 000, rounded, at least 1."""
    num_maps = max(1, round(pixels / MAP_SIDE**2))
    rng = np.random.default_rng(0)
    masks = rng.random((num_maps, MAP_SIDE, MAP_SIDE), dtype=np.float32) < positive_fraction
    maps = rng.random((num_maps, MAP_SIDE, MAP_SIDE), dtype=np.float32)
    maps += np.float32(0.3) * masks
    if variant == "tied":
        np.round(maps, 2, out=maps)
    return maps, masks


def call_of(metric: str, library: str, maps: np.ndarray, masks: np.ndarray) -> Callable[[], object]:
    """The call that `library` makes to compute `metric` on the class."""
    if metric == ALL_PIXEL_METRICS:
        return lambda: segmentation_metrics(maps, masks)
    ours, theirs = PAIRED_METRICS[metric]
    if library == "ours":
        return lambda: ours(maps, masks)
    flat_maps, flat_masks = maps.ravel(), masks.ravel()
    return lambda: theirs(flat_maps, flat_masks)


def timed_call(function: Callable[[], object]) -> tuple[float, object]:
    """Wall-clock seconds of one call, and what it returned."""
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def resident_kib(field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def peak_call_mib(function: Callable[[], object]) -> float:
    """Growth of resident memory at its peak during `function()`, in MiB."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current VmRSS
    before = resident_kib("VmRSS")
    function()
    return (resident_kib("VmHWM") - before) / 1024


def measure_memory(args: argparse.Namespace, variant: str, library: str) -> dict[str, float]:
    """In the child process: the peak memory of each of `library`'s calls, one after another."""
    maps, masks = make_class(args.pixels, args.positive_fraction, variant)
    metrics = list(PAIRED_METRICS) + ([ALL_PIXEL_METRICS] if library == "ours" else [])
    # A warm-up loads the code pages the calls touch, which count as resident too.
    warm_up_maps = np.linspace(0.0, 1.0, 4096, dtype=np.float32).reshape(1, 64, 64)
    for metric in metrics:
        call_of(metric, library, warm_up_maps, warm_up_maps > 0.9)()
    return {metric: peak_call_mib(call_of(metric, library, maps, masks)) for metric in metrics}


def memory_in_subprocess(args: argparse.Namespace, variant: str, library: str) -> dict[str, float]:
    """`measure_memory` in a fresh interpreter; empty, with the reason printed, if it fails.

    glibc's malloc serves a freed large block again from memory already resident, which
    would hide it from VmHWM, unless its mmap threshold is fixed: then every block over
    64 KiB is mapped fresh and unmapped when freed.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--pixels", str(args.pixels)]
    command += ["--positive-fraction", str(args.positive_fraction), "--threads", str(args.threads)]
    command += ["--measure-memory", variant, library]
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if completed.returncode != 0:
        print(f"  memory of {library} ({variant}) not measured: {completed.stderr.strip()[-300:]}")
        return {}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def compare(
    args: argparse.Namespace, variant: str, metric: str, maps: np.ndarray, masks: np.ndarray, memory: dict
) -> dict:
    """One row: both libraries' median time, peak memory and the difference of their values."""
    ours, theirs = call_of(metric, "ours", maps, masks), call_of(metric, "sklearn", maps, masks)
    our_times, their_times = [], []
    for _ in range(args.repeats):
        our_time, our_value = timed_call(ours)
        their_time, their_value = timed_call(theirs)
        our_times.append(our_time)
        their_times.append(their_time)
    row = {
        "variant": variant,
        "metric": metric,
        "ours_s": statistics.median(our_times),
        "sklearn_s": statistics.median(their_times),
        "abs_difference": abs(our_value - their_value),
        "ours_peak_mib": memory["ours"].get(metric),
        "sklearn_peak_mib": memory["sklearn"].get(metric),
    }
    row["speedup"] = row["sklearn_s"] / row["ours_s"]
    return row


def format_row(row: dict) -> str:
    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f}"

    ours_mib, sklearn_mib = row["ours_peak_mib"], row["sklearn_peak_mib"]
    ratio = "n/a" if ours_mib is None or sklearn_mib is None or ours_mib <= 0 else f"{sklearn_mib / ours_mib:.1f}x"
    return (
        f"{row['variant']:<11} {row['metric']:<18} {row['ours_s']:>8.3f} {row['sklearn_s']:>10.3f} "
        f"{row['speedup']:>8.1f}x {mib(ours_mib):>9} {mib(sklearn_mib):>12} {ratio:>10} {row['abs_difference']:>13.1e}"
    )


def run(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]
    results, all_pixel_metrics = [], []
    for index, variant in enumerate(VARIANTS):
        maps, masks = make_class(args.pixels, args.positive_fraction, variant)
        if index == 0:
            print(
                f"{maps.size:,} pixels ({maps.shape[0]} maps of {MAP_SIDE} x {MAP_SIDE}), "
                f"{masks.mean():.2%} anomalous; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
                f"median of {args.repeats} alternating runs"
            )
            print(
                f"{'variant':<11} {'metric':<18} {'ours s':>8} {'sklearn s':>10} {'speed-up':>9} "
                f"{'ours MiB':>9} {'sklearn MiB':>12} {'mem ratio':>10} {'|difference|':>13}"
            )
        memory = {
            library: {} if args.skip_memory else memory_in_subprocess(args, variant, library)
            for library in ("ours", "sklearn")
        }
        for metric in PAIRED_METRICS:
            results.append(compare(args, variant, metric, maps, masks, memory))
            print(format_row(results[-1]), flush=True)
        call = call_of(ALL_PIXEL_METRICS, "ours", maps, masks)
        seconds = statistics.median(timed_call(call)[0] for _ in range(args.repeats))
        peak = memory["ours"].get(ALL_PIXEL_METRICS)
        all_pixel_metrics.append({"variant": variant, "ours_s": seconds, "ours_peak_mib": peak})
        print(
            f"{variant:<11} ours only, segmentation_metrics (AUROC, AP, F1-max and AUPRO from one sort): "
            f"{seconds:.3f} s, {'n/a' if peak is None else f'{peak:.0f}'} MiB",
            flush=True,
        )
    load_after = os.getloadavg()[0]
    print(
        "speed-up = sklearn time / ours; MiB = peak growth of resident memory during one call in a fresh "
        "process (VmHWM after minus VmRSS before), the input arrays excluded"
    )
    print(
        f"1-minute load average {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} CPUs "
        "(above 0 means other processes shared the machine)"
    )
    return {
        "pixels": int(maps.size),
        "positive_fraction": args.positive_fraction,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "load_average": [load_before, load_after],
        "results": results,
        ALL_PIXEL_METRICS: all_pixel_metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", type=int, default=30_000_000, help="pixels of the class (whole 500 x 500 maps)")
    parser.add_argument("--positive-fraction", type=float, default=0.03, help="fraction of anomalous pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each call")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (and sort runs)")
    parser.add_argument("--skip-memory", action="store_true", help="time only, no memory subprocesses")
    parser.add_argument("--measure-memory", nargs=2, metavar=("VARIANT", "LIBRARY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure_memory:
        print(json.dumps(measure_memory(args, *args.measure_memory)))
        return
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
