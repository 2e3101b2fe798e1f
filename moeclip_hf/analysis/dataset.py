"""Expert analyses over a dataset: utilisation, inter-expert similarity, patch statistics (`moeclip analyze`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch import Tensor
from tqdm.auto import tqdm

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from .figures import save_similarity_figure, save_statistics_figure, save_utilisation_figure
from .inference import image_normalisation, moe_layer_numbers, routing_geometry, to_model
from .patches import STATISTICS, patch_statistics
from .reports import json_ready, markdown_table, write_csv, write_json
from .routing import (
    assignment_counts,
    average_similarity,
    image_expert_similarity,
    patch_routing,
    per_expert_sums,
)

__all__ = ["LayerTotals", "analyze_dataset"]

#: Name of the group of all images in the utilisation results (the other groups are the classes).
ALL_IMAGES = "all images"

_UTILISATION_TEXT = """\
The share of all top-k routing assignments of image patches (the CLS token left out) that each expert
received, per MoE layer: the first bar is the whole dataset, then one bar per class (paper Fig. 9, which
compares datasets). A balanced router gives every expert about 1/K; an expert with a small share is rarely
chosen on these images, which the paper attributes to the data lacking the patterns it specialises in
(Sec. E.1)."""

_SIMILARITY_TEXT = """\
For each image and MoE layer, every expert gets a feature: the mean of the MoE layer's output states over
the patches that chose it via top-k. The cosine similarity of two experts' features is averaged over the
images (paper Fig. 5, Fig. 10, Sec. F.2). An expert that no patch of an image chose has no feature there, so
its pairs are skipped for that image; `similarity.csv` gives, per pair, the number of images averaged, and a
pair never seen together is left blank (grey). Values near +1 mean two experts do the same work (functional
redundancy); values near 0 or below mean they specialise, which FOFS and the ETF loss aim for."""

_STATISTICS_TEXT = """\
The mean low-level statistics of the patches each expert wins as its top-1 choice (paper Tab. 14, Sec. E.2),
measured on the image as the model saw it (resized, CLIP normalisation undone, 8-bit grayscale): Sobel
gradient magnitude (edge strength), pixel standard deviation (contrast) and Shannon entropy in bits of the
patch's gray-level histogram (pattern complexity). The heat map colours each statistic relative to its largest
value in the layer. Experts with clearly different profiles (background, edges, texture) specialise on the
visual content of the patches."""


@dataclass
class LayerTotals:
    """Running sums of one MoE layer's routing over a dataset.

    Attributes:
        rank_counts: ``(k, K)`` patches per rank and expert, over all images.
        class_counts: class name -> its ``(k, K)`` rank counts.
        similarity_sum, pair_counts: ``(K, K)`` sums of the valid per-image expert similarities and how many
            images each pair was valid in.
        statistic_sums: ``(K, C)`` sums over the top-1 patches of each expert of the `STATISTICS`.
        statistic_counts: ``(K,)`` top-1 patches per expert.
    """

    num_experts: int
    top_k: int
    rank_counts: Tensor = field(init=False)
    class_counts: dict[str, Tensor] = field(default_factory=dict)
    similarity_sum: Tensor = field(init=False)
    pair_counts: Tensor = field(init=False)
    statistic_sums: Tensor = field(init=False)
    statistic_counts: Tensor = field(init=False)

    def __post_init__(self) -> None:
        k, n = self.top_k, self.num_experts
        self.rank_counts = torch.zeros(k, n, dtype=torch.long)
        self.similarity_sum = torch.zeros(n, n, dtype=torch.float64)
        self.pair_counts = torch.zeros(n, n, dtype=torch.long)
        self.statistic_sums = torch.zeros(n, len(STATISTICS), dtype=torch.float64)
        self.statistic_counts = torch.zeros(n, dtype=torch.long)

    def update(
        self, selected_experts: Tensor, features: Tensor, statistics: Tensor, class_names: Sequence[str] | None
    ) -> None:
        """Add a batch: the layer's ``(B, 1 + P, k)`` routing (CLS first, as the model returns it), its ``(B, P, d)``
        output patch features, the ``(B, P, C)`` patch statistics and each image's class (if known)."""
        selected = patch_routing(selected_experts)
        self.rank_counts += assignment_counts(selected, self.num_experts).cpu()
        for name in sorted(set(class_names or ())):
            rows = torch.tensor([class_name == name for class_name in class_names], device=selected.device)
            counts = assignment_counts(selected[rows], self.num_experts).cpu()
            self.class_counts[name] = self.class_counts.get(name, torch.zeros_like(counts)) + counts
        similarity, valid = image_expert_similarity(features, selected, self.num_experts)
        self.similarity_sum += (similarity.double() * valid).sum(dim=0).cpu()
        self.pair_counts += valid.sum(dim=0).cpu()
        sums, counts = per_expert_sums(statistics, selected[..., 0].cpu(), self.num_experts)
        self.statistic_sums += sums
        self.statistic_counts += counts

    def utilisation(self, counts: Tensor | None = None) -> Tensor:
        """``(K,)`` share of all top-k assignments per expert (of the given rank counts, default all images)."""
        totals = (self.rank_counts if counts is None else counts).sum(dim=0).double()
        return totals / totals.sum()

    def rank_shares(self) -> Tensor:
        """``(k, K)`` share of patches per expert at each rank."""
        counts = self.rank_counts.double()
        return counts / counts.sum(dim=-1, keepdim=True)

    def similarity(self) -> Tensor:
        """``(K, K)`` inter-expert similarity, see `average_similarity`."""
        return average_similarity(self.similarity_sum, self.pair_counts)

    def statistic_means(self) -> Tensor:
        """``(K, C)`` mean statistics of each expert's top-1 patches; NaN for an expert that won none."""
        counts = self.statistic_counts.unsqueeze(-1)
        return torch.where(counts > 0, self.statistic_sums / counts.clamp(min=1), float("nan"))


def _stack_statistics(statistics: dict[str, Tensor]) -> Tensor:
    return torch.stack([statistics[name] for name in STATISTICS], dim=-1)


def _accumulate(
    model: MoECLIPModel,
    processor: MoECLIPProcessor,
    dataset: Dataset,
    num_images: int,
    batch_size: int,
    totals: list[LayerTotals],
    progress: bool,
) -> None:
    mean, std = image_normalisation(processor)
    patch_size = model.config.vision_config.patch_size
    with tqdm(total=num_images, unit="image", desc="analyzing routing", disable=not progress) as bar:
        for start in range(0, num_images, batch_size):
            batch = dataset[start : min(start + batch_size, num_images)]
            pixel_values = processor(images=batch["image"], return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                outputs = model.get_patch_features(
                    to_model(pixel_values, model), layers=model.config.moe_config.layers, return_routing=True
                )
            statistics = _stack_statistics(patch_statistics(pixel_values, patch_size, mean, std))
            names = batch.get("class_name")
            for layer_totals, selected, features in zip(totals, outputs.selected_experts, outputs.patch_features):
                layer_totals.update(selected, features, statistics, names)
            bar.update(len(batch["image"]))


def _results(totals: list[LayerTotals], layers: list[int], num_images: int) -> dict:
    classes = sorted(totals[0].class_counts)
    return {
        "num_images": num_images,
        "num_experts": totals[0].num_experts,
        "top_k": totals[0].top_k,
        "layers": layers,
        "utilisation": {layer: t.utilisation().tolist() for layer, t in zip(layers, totals)},
        "rank_shares": {layer: t.rank_shares().tolist() for layer, t in zip(layers, totals)},
        "class_utilisation": {
            name: {layer: t.utilisation(t.class_counts[name]).tolist() for layer, t in zip(layers, totals)}
            for name in classes
        },
        "similarity": {layer: t.similarity().tolist() for layer, t in zip(layers, totals)},
        "similarity_images": {layer: t.pair_counts.tolist() for layer, t in zip(layers, totals)},
        "patch_statistics": {
            layer: {
                "patches": t.statistic_counts.tolist(),
                **{name: column.tolist() for name, column in zip(STATISTICS, t.statistic_means().T)},
            }
            for layer, t in zip(layers, totals)
        },
    }


def _utilisation_rows(layers: list[int], totals: list[LayerTotals]) -> list[list]:
    """Rows (group, layer, rank, expert, assignments, share); rank "all" pools the ranks (the utilisation)."""
    rows = []
    classes = sorted(totals[0].class_counts)
    for group in [ALL_IMAGES, *classes]:
        for layer, layer_totals in zip(layers, totals):
            counts = layer_totals.rank_counts if group == ALL_IMAGES else layer_totals.class_counts[group]
            pooled, shares = layer_totals.utilisation(counts), counts.double() / counts.sum(dim=-1, keepdim=True)
            for expert in range(counts.shape[1]):
                rows.append([group, layer, "all", expert + 1, int(counts[:, expert].sum()), float(pooled[expert])])
                rows += [
                    [group, layer, rank + 1, expert + 1, int(counts[rank, expert]), float(shares[rank, expert])]
                    for rank in range(counts.shape[0])
                ]
    return rows


def _write_tables(results: dict, totals: list[LayerTotals], output_dir: Path) -> dict[str, Path]:
    layers, experts = results["layers"], range(results["num_experts"])
    similarity_rows = [
        [layer, a + 1, b + 1, results["similarity"][layer][a][b], results["similarity_images"][layer][a][b]]
        for layer in layers
        for a in experts
        for b in experts
    ]
    statistics_rows = [
        [layer, expert + 1, entry["patches"][expert], *(entry[name][expert] for name in STATISTICS)]
        for layer, entry in results["patch_statistics"].items()
        for expert in experts
    ]
    return {
        "utilisation_csv": write_csv(
            output_dir / "utilisation.csv",
            ["group", "layer", "rank", "expert", "assignments", "share"],
            _utilisation_rows(layers, totals),
        ),
        "similarity_csv": write_csv(
            output_dir / "similarity.csv", ["layer", "expert_a", "expert_b", "cosine", "images"], similarity_rows
        ),
        "patch_statistics_csv": write_csv(
            output_dir / "patch_statistics.csv", ["layer", "expert", "patches", *STATISTICS], statistics_rows
        ),
    }


def _write_figures(results: dict, output_dir: Path) -> dict[str, Path]:
    layers = results["layers"]
    groups = {ALL_IMAGES: results["utilisation"], **results["class_utilisation"]}
    shares = {group: np.array([values[layer] for layer in layers]) for group, values in groups.items()}
    similarity = np.array([results["similarity"][layer] for layer in layers], dtype=float)
    statistics = np.array(
        [[results["patch_statistics"][layer][name] for name in STATISTICS] for layer in layers], dtype=float
    ).transpose(0, 2, 1)
    return {
        "utilisation_png": save_utilisation_figure(shares, layers, output_dir / "utilisation.png"),
        "similarity_png": save_similarity_figure(similarity, layers, output_dir / "similarity.png"),
        "patch_statistics_png": save_statistics_figure(
            statistics, layers, STATISTICS, output_dir / "patch_statistics.png"
        ),
    }


def _statistics_table(results: dict, layer: int) -> str:
    entry = results["patch_statistics"][layer]
    rows = [
        [f"Expert {expert + 1}", entry["patches"][expert]]
        + [None if entry[name][expert] is None else f"{entry[name][expert]:.2f}" for name in STATISTICS]
        for expert in range(results["num_experts"])
    ]
    return markdown_table(["expert", "top-1 patches", *STATISTICS], rows)


def _write_report(results: dict, output_dir: Path) -> Path:
    sections = [
        "# MoECLIP expert analysis",
        f"{results['num_images']} images, {results['num_experts']} experts, top-{results['top_k']} routing, "
        f"MoE layers {', '.join(str(layer) for layer in results['layers'])}. "
        "All numbers are also in [summary.json](summary.json).",
        "## Expert utilisation",
        "![Expert utilisation](utilisation.png)",
        _UTILISATION_TEXT + " The table [utilisation.csv](utilisation.csv) also splits the shares by routing rank.",
        "## Inter-expert similarity",
        "![Inter-expert similarity](similarity.png)",
        _SIMILARITY_TEXT + " Table: [similarity.csv](similarity.csv).",
        "## Low-level statistics of each expert's patches",
        "![Patch statistics](patch_statistics.png)",
        _STATISTICS_TEXT + " Table: [patch_statistics.csv](patch_statistics.csv).",
    ]
    for layer in results["layers"]:
        sections += [f"### MoE layer {layer}", _statistics_table(results, layer)]
    path = output_dir / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path


def analyze_dataset(
    model: MoECLIPModel,
    processor: MoECLIPProcessor,
    dataset: Dataset,
    output_dir: str | Path,
    batch_size: int = 8,
    max_images: int | None = None,
    progress: bool = True,
) -> dict:
    """Expert utilisation, inter-expert similarity and patch statistics over a dataset (`moeclip analyze`).

    Over every image (or the first `max_images`), for every MoE layer:

    - expert utilisation: the share of top-k assignments of the patches per expert (paper Fig. 9), over all
      images and per class, also split by rank;
    - the inter-expert cosine similarity matrix (paper Fig. 5, Fig. 10): per image, each expert's feature is the
      mean MoE-layer output state of the patches that chose it via top-k; the cosines are averaged over
      images, skipping for an image every pair with an expert that none of its patches chose. Symmetric, unit
      diagonal, NaN (null, blank) for a pair never seen together;
    - the mean Sobel gradient, pixel standard deviation and gray-level entropy of the patches each expert wins
      as top-1 (paper Tab. 14), on the preprocessed image.

    Writes `utilisation.png/.csv`, `similarity.png/.csv`, `patch_statistics.png/.csv`, `summary.json` and
    `report.md` into `output_dir`. The CLS token is left out of every statistic. The model is switched to
    evaluation mode.

    Args:
        model ([`MoECLIPModel`]): the model to analyse.
        processor ([`MoECLIPProcessor`]): its processor (only its image preprocessing is used).
        dataset (`datasets.Dataset`): rows with a PIL `image` and, optionally, a `class_name`
            (`load_benchmark(...)` without `image_size`).
        output_dir (`str` or `Path`): the folder to write to (created if needed).
        batch_size (`int`, *optional*, defaults to 8): images per forward pass.
        max_images (`int`, *optional*): analyse only the first `max_images` rows.
        progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar.

    Returns:
        `dict`: `num_images`, `num_experts`, `top_k`, `layers` (1-based MoE layers) and, keyed by layer,
        `utilisation` (K shares), `rank_shares` (k x K), `similarity` (K x K), `similarity_images` (K x K image
        counts), `patch_statistics` (`patches` and one list of K means per statistic); `class_utilisation`
        (class -> layer -> K shares); `files` (name -> written path). Undefined values are None.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive; got {batch_size}.")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be positive; got {max_images}.")
    if "image" not in dataset.column_names:
        raise ValueError(f"The dataset needs an `image` column; it has {dataset.column_names}.")
    num_images = len(dataset) if max_images is None else min(len(dataset), max_images)
    if num_images == 0:
        raise ValueError("The dataset is empty.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    num_experts, top_k = routing_geometry(model)
    layers = moe_layer_numbers(model)
    totals = [LayerTotals(num_experts, top_k) for _ in layers]
    _accumulate(model, processor, dataset, num_images, batch_size, totals, progress)
    results = json_ready(_results(totals, layers, num_images))
    files = {**_write_tables(results, totals, output_dir), **_write_figures(results, output_dir)}
    files["report"] = _write_report(results, output_dir)
    files["summary_json"] = output_dir / "summary.json"
    results["files"] = {name: str(path) for name, path in files.items()}
    write_json(files["summary_json"], results)
    return results
