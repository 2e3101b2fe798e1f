"""The model card of an exported MoECLIP repository: `moeclip evaluate` results -> model index and tables.

The card is `model_card.md` (this folder) filled in for a model's config: its front matter keeps the
template's fields and adds `base_model` and, given results, a `model-index` with one metric per dataset.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml
from huggingface_hub import EvalResult, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..benchmarks import METRIC_NAMES, display_name
from ..configuration import MoECLIPConfig
from ..inference.task import TASK

ResultsSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]

TEMPLATES = __package__
MODEL_CARD_TEMPLATE = "model_card.md"
DEFAULT_BASE_MODEL = "openai/clip-vit-large-patch14-336"
#: Used in the card's code snippets when the export names no repository.
PLACEHOLDER_REPO_ID = "your-username/moeclip"
TASK_NAME = "Zero-shot anomaly detection"
_METRIC_WORDS = {"image": "Image", "pixel": "Pixel", "auroc": "AUROC", "ap": "AP", "aupro": "AUPRO", "f1_max": "F1-max"}
_METRIC_NAME = re.compile(r"^(image|pixel)_\w+$")
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)


# ----------------------------------------------------------------------------------------------- results


def load_results(results: ResultsSource) -> dict[str, dict[str, float]]:
    """Dataset -> metric -> value in percent, from what `moeclip evaluate` wrote.

    `results` is the parsed JSON, the path of the JSON file, or a folder (its newest `*.json` is used).
    The reader is tolerant of the layout: `{"datasets": {name: entry}}` or `{name: entry}` directly, where
    an entry is `{"mean": metrics}`, `{"classes": {class: metrics}}` (the mean over classes is taken), or
    the metrics themselves. Metrics are the numeric fields named `image_*` or `pixel_*`; missing and
    non-finite values are skipped. Values are percentages in the card, like the paper's tables: when every
    metric of the file lies in [0, 1] the file holds fractions and they are multiplied by 100.
    """
    data = _read_results(results) if not isinstance(results, Mapping) else results
    datasets = data.get("datasets", data)
    if not isinstance(datasets, Mapping):
        raise ValueError("The results hold no per-dataset metrics (expected {'datasets': {name: {'mean': {...}}}}).")
    metrics = {str(name): _dataset_metrics(entry) for name, entry in datasets.items() if isinstance(entry, Mapping)}
    metrics = {name: values for name, values in metrics.items() if values}
    if not metrics:
        raise ValueError("The results hold no image_* or pixel_* metrics for any dataset.")
    values = [value for dataset in metrics.values() for value in dataset.values()]
    scale = 100.0 if all(0.0 <= value <= 1.0 for value in values) else 1.0
    return {name: {metric: value * scale for metric, value in dataset.items()} for name, dataset in metrics.items()}


def _read_results(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.json"), key=lambda candidate: candidate.stat().st_mtime)
        if not candidates:
            raise FileNotFoundError(f"No results JSON in {path}.")
        path = candidates[-1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"Cannot read results {path}: {error}") from error
    if not isinstance(data, Mapping):
        raise ValueError(f"Results {path} must hold a JSON object.")
    return data


def _numeric_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(name): float(value)
        for name, value in row.items()
        if _METRIC_NAME.match(str(name))
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def _dataset_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """One dataset's mean metrics: its `mean` row, else the mean of its class rows, else the entry itself."""
    if isinstance(entry.get("mean"), Mapping):
        return _numeric_metrics(entry["mean"])
    if isinstance(entry.get("classes"), Mapping):
        rows = [_numeric_metrics(row) for row in entry["classes"].values() if isinstance(row, Mapping)]
        names = sorted({name for row in rows for name in row})
        return {name: _mean([row[name] for row in rows if name in row]) for name in names}
    return _numeric_metrics(entry)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def metric_display_name(metric: str) -> str:
    """`pixel_aupro` -> `Pixel AUPRO`, `image_f1_max` -> `Image F1-max`."""
    domain, _, name = metric.partition("_")
    return f"{_METRIC_WORDS.get(domain, domain.title())} {_METRIC_WORDS.get(name, name.replace('_', ' '))}"


def _ordered_metrics(names: set[str]) -> list[str]:
    return [name for name in METRIC_NAMES if name in names] + sorted(names - set(METRIC_NAMES))


def eval_results(metrics: Mapping[str, Mapping[str, float]]) -> list[EvalResult]:
    """The model-index entries: one per dataset and metric, the value in percent to two decimals."""
    return [
        EvalResult(
            task_type=TASK,
            task_name=TASK_NAME,
            dataset_type=dataset,
            dataset_name=display_name(dataset),
            dataset_split="test",
            metric_type=metric,
            metric_name=metric_display_name(metric),
            metric_value=round(values[metric], 2),
        )
        for dataset, values in metrics.items()
        for metric in _ordered_metrics(set(values))
    ]


def results_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table, one row per dataset, one column per metric, in percent to one decimal."""
    columns = _ordered_metrics({name for values in metrics.values() for name in values})
    lines = [
        "| Dataset | " + " | ".join(metric_display_name(name) for name in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for dataset, values in metrics.items():
        cells = [f"{values[name]:.1f}" if name in values else "–" for name in columns]
        lines.append(f"| {display_name(dataset)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _results_section(metrics: Mapping[str, Mapping[str, float]] | None) -> str:
    if not metrics:
        return (
            "No evaluation results were attached to this export. Run `moeclip evaluate` on the benchmarks and "
            "export again with its results to fill in this section and the model index."
        )
    return (
        "Zero-shot results of this checkpoint from `moeclip evaluate`: the mean over each benchmark's classes, "
        "in percent, with the published protocol (maps min-max normalised per class).\n\n" + results_table(metrics)
    )


# -------------------------------------------------------------------------------------------- model card


def _template(name: str) -> str:
    return resources.files(TEMPLATES).joinpath(name).read_text(encoding="utf-8")


def split_front_matter(card: str) -> tuple[dict[str, Any], str]:
    """A model card's YAML front matter (parsed) and its body."""
    match = _FRONT_MATTER.match(card)
    if match is None:
        raise ValueError("The model card does not start with a YAML front matter block between '---' lines.")
    return yaml.safe_load(match.group(1)) or {}, match.group(2)


def base_model_id(config: MoECLIPConfig, repo_id: str | None = None) -> str:
    """The CLIP checkpoint the model was built from, when the config remembers a Hub id for it.

    `MoECLIPModel.from_clip` records the CLIP checkpoint in `config._name_or_path`; after a reload from a
    folder that attribute holds the folder instead, and after a load from the Hub the model's own id,
    so anything that is not another repository's id falls back to the paper's CLIP checkpoint.
    """
    name = str(getattr(config, "_name_or_path", "") or "")
    if _is_namespaced_repo_id(name) and name != repo_id and not Path(name).exists():
        return name
    return DEFAULT_BASE_MODEL


def _is_namespaced_repo_id(name: str) -> bool:
    """Whether `name` is a valid `org/name` Hub repository id (huggingface_hub's own rules)."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return "/" in name


def _human_list(values: list[Any]) -> str:
    items = [str(value) for value in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


#: The card's sentence on how the experts were trained, per `MoECLIPConfig.compatibility`.
TRAINING_NOTES = {
    "paper": "A simplex equiangular tight frame loss keeps their outputs apart.",
    "released": "It runs in the released-code compatibility mode: as the authors' released code does, with exact "
    "GELU in both towers, a trainable text projection and a dot-product image score, its experts trained "
    "without the equiangular tight frame and balance losses.",
}


def _card_fields(
    config: MoECLIPConfig, base_model: str, model_name: str, model_id: str, results: str
) -> dict[str, str]:
    """The values of the template's `$placeholders`."""
    moe = config.moe_config
    return {
        "model_name": model_name,
        "model_id": model_id,
        "base_model": base_model,
        "image_size": str(config.image_size),
        "moe_layers": _human_list(moe.layers),
        "num_experts": str(moe.num_experts),
        "rank": str(moe.r),
        "top_k": str(moe.top_k),
        "feature_layers": _human_list(config.feature_layers),
        "paa_scales": _human_list(config.paa_scales),
        "threshold": f"{config.anomaly_threshold:g}",
        "domain": config.domain,
        "results": results,
        "training_note": TRAINING_NOTES[config.compatibility],
    }


def render_model_card(config: MoECLIPConfig, results: ResultsSource | None = None, repo_id: str | None = None) -> str:
    """The README.md of an exported model: the `model_card.md` template filled in for `config`.

    The front matter keeps the template's fields (library, `pipeline_tag: image-segmentation` so that the
    Hub's widget and Inference Endpoints treat the output as a mask, tags, license, training data, widget),
    adds `base_model`, and, when `results` are given (see [`load_results`]), a `model-index` with one
    metric per dataset, in percent. The body describes the model with the config's own sizes.
    """
    metadata, body = split_front_matter(_template(MODEL_CARD_TEMPLATE))
    metrics = load_results(results) if results is not None else None
    model_name = repo_id.split("/")[-1] if repo_id else "moeclip"
    base_model = base_model_id(config, repo_id)
    card_data = ModelCardData(
        **metadata,
        base_model=base_model,
        model_name=model_name,
        eval_results=eval_results(metrics) if metrics else None,
    )
    fields = _card_fields(config, base_model, model_name, repo_id or PLACEHOLDER_REPO_ID, _results_section(metrics))
    return f"---\n{card_data.to_yaml()}\n---\n{string.Template(body).substitute(fields)}"




__all__ = [
    "DEFAULT_BASE_MODEL",
    "PLACEHOLDER_REPO_ID",
    "ResultsSource",
    "base_model_id",
    "eval_results",
    "load_results",
    "metric_display_name",
    "render_model_card",
    "results_table",
    "split_front_matter",
]
