"""The benchmark runner: a model over a benchmark, class by class, into per-class tables.

Two protocols (METHOD.md, "Outputs"):

- `"moeclip"`, the released benchmark protocol: per (layer, scale) the map (z_A + 1 - z_N) / 2, blurred and
  summed; the summed maps min-max normalised over all images of the class (with the model's
  `protocol_normalization="outside_unit_range"`, only when they leave [0, 1], as the released code does); image score
  w * max(map) + (1 - w) * (cos_A + 1) / 2 with w = 0.5 (industrial) or 1 (medical). It uses test-set
  statistics, so it serves benchmark numbers only.
- `"probability"`, the single-image definition the pipeline and CLI use: the model's own `anomaly_map`
  (in [0, 1]) and `anomaly_score`, which need no other image.

Each class is scored as its rows say: the prompt ensemble of its `description`, the blur and score fusion
of its `domain` (a JSON-lines file may mix industrial and medical classes). The released code's
best-epoch-on-test selection is deliberately not offered.

Under `accelerate launch` or `torchrun` each process scores a contiguous share of the batches and the
main process computes the metrics from the gathered values (`evaluation.distributed`): the same floats as
one process.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..benchmarks import METRIC_NAMES, matching_benchmark
from ..configuration import MoECLIPConfig
from ..data.loading import class_settings, collate_samples
from ..distributed.agreement import require_agreement, sequence_fingerprint
from ..distributed.processes import ProcessGroup, SingleProcess
from ..distributed.sharding import fixed_batches, shard_batches
from ..modeling.maps import image_anomaly_score, protocol_anomaly_map
from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from ..modeling.prompts import class_wording
from . import PROTOCOLS
from .accumulator import ClassMetricAccumulator
from .distributed import dataset_fingerprint, gather_accumulator


@dataclass
class BenchmarkResult:
    """Per-class metrics of one dataset and their mean over classes (fractions in [0, 1], None = not defined);
    `images_per_rank`: how many images each process scored (one entry for a single-process run)."""

    dataset: str
    protocol: str
    classes: dict[str, dict[str, float | None]]
    mean: dict[str, float | None] = field(init=False)
    images_per_rank: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mean = mean_over_classes(self.classes.values())

    def rows(self) -> list[tuple[str, dict[str, float | None]]]:
        """(class, metrics) rows followed by the mean row."""
        return [*self.classes.items(), ("mean", self.mean)]

    def to_markdown(self) -> str:
        """The per-class table in percent; under the mean, the paper's figures (Tab. 1) when the classes are
        exactly those of a benchmark the paper reports (aliases resolved), and only then."""
        header = "| class | " + " | ".join(METRIC_NAMES) + " |"
        lines = [header, "|" + "---|" * (len(METRIC_NAMES) + 1)]
        for name, metrics in self.rows():
            cells = [_percent(metrics.get(metric)) for metric in METRIC_NAMES]
            label = f"**{name}**" if name == "mean" else name
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        benchmark = matching_benchmark(self.classes)
        reference = benchmark.paper if benchmark is not None else None
        if reference:
            cells = [f"{reference[metric]:.1f}" if metric in reference else "" for metric in METRIC_NAMES]
            lines.append("| paper (Tab. 1) | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "classes": self.classes, "mean": self.mean}


def mean_over_classes(per_class: Iterable[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over the classes where it is defined (None where no class defines it)."""
    per_class = list(per_class)
    mean: dict[str, float | None] = {}
    for metric in METRIC_NAMES:
        values = [metrics[metric] for metrics in per_class if metrics.get(metric) is not None]
        mean[metric] = sum(values) / len(values) if values else None
    return mean


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def class_indices(dataset: Dataset) -> dict[str, list[int]]:
    """Row indices per class, read from the Arrow column (no image is decoded)."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(dataset.data.column("class_name").to_pylist()):
        groups.setdefault(name, []).append(index)
    return groups


@torch.no_grad()
def evaluate_dataset(
    model: MoECLIPModel,
    processor: MoECLIPProcessor,
    dataset: Dataset,
    dataset_name: str,
    protocol: str = "moeclip",
    batch_size: int = 8,
    domain: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
    processes: ProcessGroup | None = None,
) -> BenchmarkResult | None:
    """Run `model` over a benchmark dataset (from `load_benchmark(..., image_size=model.config.image_size)`).

    Classes are accumulated batch by batch (`ClassMetricAccumulator`); each class's prompts are encoded once,
    from its rows' `description`, and its maps blurred and its scores fused as its rows' `domain` says.
    `domain` overrides the rows' domain for every class.

    With `processes` (`distributed.launched_processes()`), every process must call this with the same
    arguments. The dataset's batches (each of one class, as one process forms them) are shared out in
    contiguous runs; each process keeps its share of every class until all are scored, then the classes'
    shares are gathered onto the main process, which alone shows the progress bar, computes the metrics
    and returns the result (None on the others). The processes first check that they list the same rows
    and settings (`RanksDisagreeError`). Alone, a process holds one class at a time.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset_name!r} has no images to evaluate.")
    model.eval()
    device = next(model.parameters()).device
    config = model.config
    size = config.image_size
    group = processes or SingleProcess(device)
    if group.num_processes > 1:
        require_agreement(group, {
            f"data of {dataset_name} (images, masks, labels, classes, prompts, domains)": dataset_fingerprint(dataset),
            "evaluation settings (protocol, batch size, domain)": sequence_fingerprint([protocol, batch_size, domain]),
        })  # fmt: skip
    groups = class_indices(dataset)
    settings = class_settings(dataset)
    class_of = {index: class_name for class_name, indices in groups.items() for index in indices}
    batches = [batch for indices in groups.values() for batch in fixed_batches(indices, batch_size)]
    share = shard_batches(batches, group.num_processes, group.rank)
    own_images = Counter()
    for indices in share:
        own_images[class_of[indices[0]]] += len(indices)
    loader = DataLoader(dataset, batch_sampler=share, collate_fn=collate_samples, num_workers=num_workers)
    bar = tqdm(
        total=len(dataset), desc=f"{dataset_name} ({protocol})", unit="img", disable=not (progress and group.is_main)
    )
    accumulators: dict[str, ClassMetricAccumulator] = {}
    results: dict[str, dict[str, float | None]] = {}
    scored_here = 0
    for indices, batch in zip(share, loader, strict=True):
        class_name = class_of[indices[0]]  # a batch never spans two classes
        if class_name not in accumulators:
            if group.num_processes == 1 and accumulators:  # alone, hold one class at a time
                finished, accumulator = accumulators.popitem()
                results[finished] = _class_metrics(accumulator, protocol, config, domain or settings[finished][1])
            description, row_domain = settings[class_name]
            class_domain = domain or row_domain
            kernel, sigma = config.blur_kernel_sizes[class_domain], config.blur_sigmas[class_domain]
            prompts = processor.tokenize_descriptions([class_wording(class_name, description, config.class_descriptions)])
            text = model.encode_prompts(prompts["prompt_input_ids"].to(device), prompts["prompt_attention_mask"].to(device))
            accumulators[class_name] = ClassMetricAccumulator(expected_num_images=own_images[class_name])
        pixel_values = batch["pixel_values"].to(device)
        out = model(pixel_values=pixel_values, text_embeds=text.expand(pixel_values.shape[0], -1, -1), domain=class_domain)
        if protocol == "moeclip":
            maps = protocol_anomaly_map(out.patch_logits.flatten(1, 2).float(), size, kernel, sigma)
            scores = image_anomaly_score(out.image_logits.float())
        else:
            maps, scores = out.anomaly_map.float(), out.anomaly_score.float()
        accumulators[class_name].update(scores.cpu(), batch["labels"], maps.cpu(), batch["masks"][:, 0] > 0.5)
        scored_here += pixel_values.shape[0]
        # The other processes move at about this process's pace: count their batches as done too.
        bar.update(min(pixel_values.shape[0] * group.num_processes, bar.total - bar.n))
    bar.update(bar.total - bar.n)
    bar.close()
    for class_name in groups:  # in order on every process: each class's shares meet on the main process
        if class_name in results:
            continue
        accumulator = gather_accumulator(accumulators.pop(class_name, ClassMetricAccumulator()), group)
        if accumulator is not None:
            results[class_name] = _class_metrics(accumulator, protocol, config, domain or settings[class_name][1])
    images_per_rank = [int(count) for count in group.all_gather(torch.tensor([scored_here]))]
    if not group.is_main:
        return None
    return BenchmarkResult(dataset_name, protocol, {name: results[name] for name in groups}, images_per_rank)


def _class_metrics(
    accumulator: ClassMetricAccumulator, protocol: str, config: MoECLIPConfig, class_domain: str
) -> dict[str, float | None]:
    """The metrics of one whole class: after the MoECLIP protocol's normalisation and fusion, or as scored."""
    if protocol == "moeclip":
        return accumulator.compute(
            normalize_maps=True,
            score_fusion_weight=config.score_fusion_weights[class_domain],
            normalize_only_outside_unit_range=config.protocol_normalization == "outside_unit_range",
        )
    return accumulator.compute()


def write_results(results: list[BenchmarkResult], output_dir: str | Path, model_name: str = "") -> dict[str, Path]:
    """Write `results.json` (all datasets), one CSV per dataset and `results.md`; return their paths.

    `results.json` also records `num_processes` and `images_per_rank`, the images each process scored over
    all datasets, when every result carries them.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    payload = {"model": model_name, "datasets": {result.dataset: result.to_dict() for result in results}}
    if results and all(result.images_per_rank for result in results):
        images_per_rank = [sum(counts) for counts in zip(*(result.images_per_rank for result in results), strict=True)]
        payload.update(num_processes=len(images_per_rank), images_per_rank=images_per_rank)
    paths["json"] = output_dir / "results.json"
    paths["json"].write_text(json.dumps(payload, indent=2))
    for result in results:
        csv_path = output_dir / f"results_{result.dataset}.csv"
        with csv_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", *METRIC_NAMES])
            for name, metrics in result.rows():
                writer.writerow([name, *("" if metrics.get(metric) is None else f"{metrics[metric]:.6f}" for metric in METRIC_NAMES)])
        paths[f"csv_{result.dataset}"] = csv_path
    paths["markdown"] = output_dir / "results.md"
    paths["markdown"].write_text(
        "\n\n".join(f"## {result.dataset} ({result.protocol} protocol)\n\n{result.to_markdown()}" for result in results) + "\n"
    )
    return paths


__all__ = [
    "BenchmarkResult",
    "class_indices",
    "evaluate_dataset",
    "mean_over_classes",
    "write_results",
]
