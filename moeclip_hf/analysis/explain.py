"""Explaining one image: routing maps per MoE layer and anomaly maps per layer and scale (`moeclip explain`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from transformers import BatchFeature

from ..benchmarks import DOMAINS
from ..image_io import ImageSource, read_image, source_name
from ..modeling.maps import probability_anomaly_map
from ..modeling.modeling_moeclip import MoECLIPModel, MoECLIPOutput
from ..modeling.processing_moeclip import MoECLIPProcessor
from .figures import save_anomaly_map_figure, save_selection_figure
from .inference import model_view, moe_layer_numbers, routing_geometry, to_model
from .reports import markdown_table, write_json
from .routing import (
    assignment_counts,
    expert_utilisation,
    mean_routing_weights,
    patch_routing,
    routing_shares,
    selection_maps,
)

__all__ = ["component_anomaly_maps", "explain_image", "layer_routing_summary"]

_ANOMALY_MAPS_TEXT = """\
Each panel is the anomaly probability of one feature layer (rows) at one patch-aggregation scale (columns,
the s x s window averaged by PAA, Eq. 10): the softmax over the normal and abnormal text prompts of Eq. 12,
blurred and upsampled as at test time. The *ensemble* panel is their mean, the map the model reports
(paper Fig. 11). Deeper layers tend to pick out fine detail and larger scales cover broader context; an anomaly
that several panels agree on is a robust finding, one that only a single panel shows is weak evidence."""

_ROUTING_TEXT = """\
In every MoE layer a router sends each image patch to its top-k LoRA experts (Eq. 1-2). In the figures
below, row *Top-j* shows, for each expert, the patches (tinted green) whose j-th choice it is, over the image
as the model saw it (paper Fig. 3 and Figs. 12-15). The maps of one row partition the image, so their shares
sum to 100 %. The *mean weight* in a panel is the expert's renormalised routing weight (top-k weights summing
to 1), averaged over the patches of that panel: how decisively the router backs the expert where it picks it.
Experts that cover distinct regions (object, background, the defect) show content-based, patch-specialised
routing; an expert that is rarely chosen on this image may specialise in patterns the image does not contain
(paper Sec. E.1)."""


def component_anomaly_maps(patch_logits: Tensor, image_size: int, kernel_size: int, sigma: float) -> Tensor:
    """The single-image anomaly map of every (feature layer, PAA scale) separately (paper Fig. 11).

    Each is the blurred, upsampled anomaly probability of Eq. 12 (`probability_anomaly_map` of one map), so
    their mean over layers and scales is exactly the model's `anomaly_map`.

    Args:
        patch_logits (`torch.FloatTensor` of shape `(B, L, S, 2, g, g)`): the model's `patch_logits`.
        image_size (`int`): side of the output maps.
        kernel_size, sigma: the domain's Gaussian blur.

    Returns:
        `torch.FloatTensor` of shape `(B, L, S, image_size, image_size)` with values in [0, 1].
    """
    if patch_logits.ndim != 6:
        raise ValueError(f"`patch_logits` must have shape (B, L, S, 2, g, g), got {tuple(patch_logits.shape)}.")
    flat = patch_logits.float().flatten(0, 2).unsqueeze(1)
    maps = probability_anomaly_map(flat, image_size, kernel_size, sigma)
    return maps.reshape(*patch_logits.shape[:3], *maps.shape[-2:])


def layer_routing_summary(selected_experts: Tensor, routing_weights: Tensor, num_experts: int) -> dict:
    """Per rank, the share and count of patches per expert and their mean weight, and the utilisation.

    Args:
        selected_experts, routing_weights (`torch.Tensor` of shape `(B, P, k)`): patch routing of one layer.
        num_experts (`int`): K.

    Returns:
        ``{"top1": {"share", "patches", "mean_weight"}, "top2": ..., "utilisation": [...]}``, lists over experts;
        a mean weight is NaN where no patch chose the expert at that rank.
    """
    shares = routing_shares(selected_experts, num_experts)
    counts = assignment_counts(selected_experts, num_experts)
    weights = mean_routing_weights(selected_experts, routing_weights, num_experts)
    summary = {
        f"top{rank + 1}": {
            "share": shares[rank].tolist(),
            "patches": counts[rank].tolist(),
            "mean_weight": weights[rank].tolist(),
        }
        for rank in range(shares.shape[0])
    }
    summary["utilisation"] = expert_utilisation(selected_experts, num_experts).tolist()
    return summary


def _run(model: MoECLIPModel, inputs: BatchFeature, domain: str) -> MoECLIPOutput:
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    inputs["pixel_values"] = to_model(inputs["pixel_values"], model)
    with torch.no_grad():
        return model(**inputs, return_routing=True, domain=domain)


def _routing_table(summary: dict, num_experts: int, top_k: int) -> str:
    header = ["expert"]
    for rank in range(1, top_k + 1):
        header += [f"top-{rank} share", f"top-{rank} mean weight"]
    header.append("share of top-k assignments")
    rows = []
    for expert in range(num_experts):
        row = [f"Expert {expert + 1}"]
        for rank in range(1, top_k + 1):
            entry = summary[f"top{rank}"]
            weight = entry["mean_weight"][expert]
            row += [f"{entry['share'][expert]:.1%}", None if math.isnan(weight) else f"{weight:.3f}"]
        row.append(f"{summary['utilisation'][expert]:.1%}")
        rows.append(row)
    return markdown_table(header, rows)


def _explain_routing(
    model: MoECLIPModel, outputs: MoECLIPOutput, view: np.ndarray, output_dir: Path
) -> tuple[dict[int, dict], list[str]]:
    """Write one patch-selection figure per MoE layer; return the layers' summaries and report sections."""
    num_experts, top_k = routing_geometry(model)
    summaries, sections = {}, []
    for layer, selected, weights in zip(moe_layer_numbers(model), outputs.selected_experts, outputs.routing_weights):
        selected, weights = patch_routing(selected.cpu()), patch_routing(weights.cpu())
        summary = summaries[layer] = layer_routing_summary(selected, weights, num_experts)
        figure = save_selection_figure(
            view,
            selection_maps(selected, num_experts)[0].numpy(),
            np.array([summary[f"top{rank + 1}"]["share"] for rank in range(top_k)]),
            np.array([summary[f"top{rank + 1}"]["mean_weight"] for rank in range(top_k)]),
            layer,
            output_dir / f"routing_layer{layer:02d}.png",
        )
        sections.append(
            f"### MoE layer {layer}\n\n![Patch selection at layer {layer}]({figure.name})\n\n"
            + _routing_table(summary, num_experts, top_k)
        )
    return summaries, sections


def _explain_maps(model: MoECLIPModel, outputs: MoECLIPOutput, view: np.ndarray, domain: str, output_dir: Path) -> Path:
    """Write the figure of the anomaly maps of every (feature layer, PAA scale) and their ensemble."""
    config = model.config
    maps = component_anomaly_maps(
        outputs.patch_logits, config.image_size, config.blur_kernel_sizes[domain], config.blur_sigmas[domain]
    )
    return save_anomaly_map_figure(
        view,
        maps[0].cpu().numpy(),
        outputs.anomaly_map[0].float().cpu().numpy(),
        config.feature_layers,
        config.paa_scales,
        output_dir / "anomaly_maps.png",
    )


def _report_header(model: MoECLIPModel, name: str, class_name: str, domain: str, score: float) -> str:
    """Title and key facts of the report: class, domain, score and verdict, the model's view of the image."""
    config = model.config
    threshold = float(config.anomaly_threshold)
    size, grid, patch = config.image_size, config.grid_size, config.vision_config.patch_size
    verdict = "anomalous" if score >= threshold else "normal"
    return (
        f"# MoECLIP explanation of `{name}`\n\n"
        f"- class: `{class_name}`; domain: {domain}\n"
        f"- anomaly score: **{score:.4f}** (threshold {threshold:g}: {verdict})\n"
        f"- the model sees the image resized to {size} x {size} pixels ([input.png](input.png)) "
        f"and cut into {grid} x {grid} patches of {patch} x {patch} pixels"
    )


def explain_image(
    model: MoECLIPModel,
    processor: MoECLIPProcessor,
    image: ImageSource,
    class_name: str,
    output_dir: str | Path,
    domain: str | None = None,
) -> Path:
    """Explain the model's verdict on one image with its routing and anomaly maps; the work of `moeclip explain`.

    Writes into `output_dir`:

    - `input.png`: the image as the model saw it (resized to the model's square input, no crop);
    - `routing_layerNN.png` per MoE layer NN: the top-1 ... top-k patch-selection maps of every expert, with
      each panel's share of patches and mean renormalised routing weight (paper Fig. 3, Figs. 12-15);
    - `anomaly_maps.png`: the map of every (feature layer, PAA scale) and their ensemble (paper Fig. 11);
    - `routing_shares.json`: per MoE layer and rank, the share of patches per expert (summing to 1), their
      counts and mean routing weights, and the share of all top-k assignments (null where undefined);
    - `report.md`: the figures with what each one shows.

    Routing is reported for the image patches; the CLS token, which the MoE layers also route, is left out.
    The model is switched to evaluation mode.

    Args:
        model ([`MoECLIPModel`]): the model to explain.
        processor ([`MoECLIPProcessor`]): its processor.
        image: a path, a `PIL.Image` or a `datasets` image mapping; any mode is converted to RGB.
        class_name (`str`): what the image shows, in free text (benchmark names get their description).
        output_dir (`str` or `Path`): the folder to write to (created if needed).
        domain (`str`, *optional*): `"industrial"` or `"medical"` (the map blur); defaults to the model's.

    Returns:
        `Path`: the written `report.md`.
    """
    domain = domain or model.config.domain
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}; got {domain!r}.")
    picture = read_image(image)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    inputs = processor(
        images=picture, class_names=[class_name], return_tensors="pt", class_descriptions=model.config.class_descriptions
    )
    outputs = _run(model, inputs, domain)
    view = model_view(inputs["pixel_values"], processor)[0]
    Image.fromarray(view).save(output_dir / "input.png")

    summaries, routing_sections = _explain_routing(model, outputs, view, output_dir)
    _explain_maps(model, outputs, view, domain, output_dir)
    num_experts, top_k = routing_geometry(model)
    name = source_name(image)
    write_json(
        output_dir / "routing_shares.json",
        {
            "image": name,
            "class_name": class_name,
            "num_experts": num_experts,
            "top_k": top_k,
            "num_patches": model.config.grid_size**2,
            "layers": summaries,
        },
    )
    header = _report_header(model, name, class_name, domain, float(outputs.anomaly_score[0]))
    report = "\n\n".join(
        [
            header,
            "## Anomaly maps per feature layer and scale",
            "![Anomaly maps](anomaly_maps.png)",
            _ANOMALY_MAPS_TEXT,
            "## Patch routing per MoE layer",
            _ROUTING_TEXT + "\n\nThe numbers are also in [routing_shares.json](routing_shares.json).",
            *routing_sections,
        ]
    )
    report_path = output_dir / "report.md"
    report_path.write_text(report + "\n", encoding="utf-8")
    return report_path
