"""MoECLIP on the Hugging Face Hub: the model card, the exported repository folder, and the upload.

An exported folder is a complete Hub repository:

- `model.safetensors` and `config.json` (with `auto_map` and `custom_pipelines` for remote code),
- the processor (`processor_config.json`, the tokenizer files) and `preprocessor_config.json`, which the
  Hub widget and `AutoImageProcessor` look for,
- the model code as flat remote-code files (see `moeclip_hf.remote_code`), so that
  `AutoModel.from_pretrained(repo, trust_remote_code=True)` and
  `pipeline("zero-shot-anomaly-detection", model=repo, trust_remote_code=True)` work without `moeclip_hf`,
- `handler.py` and `requirements.txt` for Inference Endpoints,
- `README.md`, the model card rendered from `model_card.md`, with the latest `moeclip evaluate` results.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml
from huggingface_hub import CommitInfo, EvalResult, HfApi, ModelCardData

from .configuration import MoECLIPConfig
from .modeling.modeling_moeclip import MoECLIPModel
from .modeling.processing_moeclip import MoECLIPProcessor
from .pipelines import TASK
from .remote_code import auto_map, custom_pipelines, requirements, write_remote_code

ResultsSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]

TEMPLATES = f"{__package__}.export_templates"
MODEL_CARD_TEMPLATE = "model_card.md"
HANDLER_TEMPLATE = "handler.py"
DEFAULT_BASE_MODEL = "openai/clip-vit-large-patch14-336"
#: Used in the card's code snippets when the export names no repository.
PLACEHOLDER_REPO_ID = "your-username/moeclip"
TASK_NAME = "Zero-shot anomaly detection"
#: Display names of the benchmarks `moeclip evaluate` writes; other keys are shown as written.
DATASET_NAMES = {
    "mvtec": "MVTec AD",
    "visa": "VisA",
    "btad": "BTAD",
    "rsdd": "RSDD",
    "dtd": "DTD-Synthetic",
    "brain_mri": "Brain MRI",
    "liver_ct": "Liver CT",
    "retina_oct": "Retina OCT",
    "head_ct": "Head CT",
    "colondb": "ColonDB",
    "clinicdb": "ClinicDB",
    "cvc300": "CVC-300",
    "endo": "Endo",
    "kvasir": "Kvasir",
}
#: Column order of the results table; other metrics follow alphabetically.
METRIC_ORDER = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_aupro", "pixel_f1_max")
_METRIC_WORDS = {"image": "Image", "pixel": "Pixel", "auroc": "AUROC", "ap": "AP", "aupro": "AUPRO", "f1_max": "F1-max"}
_METRIC_NAME = re.compile(r"^(image|pixel)_\w+$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
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
    return [name for name in METRIC_ORDER if name in names] + sorted(names - set(METRIC_ORDER))


def eval_results(metrics: Mapping[str, Mapping[str, float]]) -> list[EvalResult]:
    """The model-index entries: one per dataset and metric, the value in percent to two decimals."""
    return [
        EvalResult(
            task_type=TASK,
            task_name=TASK_NAME,
            dataset_type=dataset,
            dataset_name=DATASET_NAMES.get(dataset, dataset),
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
        lines.append(f"| {DATASET_NAMES.get(dataset, dataset)} | " + " | ".join(cells) + " |")
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
    if _HUB_ID.match(name) and name != repo_id and not Path(name).exists():
        return name
    return DEFAULT_BASE_MODEL


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
    moe = config.moe
    return {
        "model_name": model_name,
        "model_id": model_id,
        "base_model": base_model,
        "image_size": str(config.image_size),
        "moe_layers": _human_list(moe["layers"]),
        "num_experts": str(moe["num_experts"]),
        "rank": str(moe["r"]),
        "top_k": str(moe["top_k"]),
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


# ------------------------------------------------------------------------------------------------ export


def _as_model(model: str | os.PathLike[str] | MoECLIPModel) -> MoECLIPModel:
    if isinstance(model, MoECLIPModel):
        return model
    return MoECLIPModel.from_pretrained(model)


def _as_processor(processor: MoECLIPProcessor | None, model: str | os.PathLike[str] | MoECLIPModel) -> MoECLIPProcessor:
    """The given processor, else the one saved with the model (its folder or Hub id)."""
    if processor is not None:
        return processor
    source = model.name_or_path if isinstance(model, MoECLIPModel) else model
    if not source:
        raise ValueError("export_model needs `processor=` for a model that was not loaded from a folder or the Hub.")
    try:
        return MoECLIPProcessor.from_pretrained(source)
    except OSError as error:
        raise ValueError(f"No MoECLIP processor could be loaded from {source}; pass `processor=`: {error}") from error


def _update_json(path: Path, fields: Mapping[str, Any]) -> None:
    """Add `fields` to a saved JSON config, written the way transformers writes its configs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(fields)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_weights_and_processor(model: MoECLIPModel, processor: MoECLIPProcessor, folder: Path) -> None:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    processor.image_processor.save_pretrained(folder)


def _save_remote_code(folder: Path) -> list[Path]:
    """Write the flat model code and point config.json and processor_config.json at it."""
    paths = write_remote_code(folder)
    mapping = auto_map()
    _update_json(folder / "config.json", {"auto_map": mapping, "custom_pipelines": custom_pipelines()})
    _update_json(folder / "processor_config.json", {"auto_map": {"AutoProcessor": mapping["AutoProcessor"]}})
    return paths


def _save_endpoint_files(folder: Path, code_paths: list[Path]) -> None:
    """Write handler.py and the requirements.txt of everything the exported code imports."""
    handler = folder / HANDLER_TEMPLATE
    handler.write_text(_template(HANDLER_TEMPLATE), encoding="utf-8")
    lines = requirements([*code_paths, handler])
    (folder / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_model(
    model: str | os.PathLike[str] | MoECLIPModel,
    output_dir: str | os.PathLike[str],
    processor: MoECLIPProcessor | None = None,
    results: ResultsSource | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the folder that [`push_to_hub`] uploads (see the module docstring for its files).

    Args:
        model: a [`MoECLIPModel`], or the folder or Hub id of a saved one.
        output_dir: the folder to write; created if needed, existing files of the same names replaced.
        processor: the model's [`MoECLIPProcessor`]; by default loaded from where the model was loaded.
        results: `moeclip evaluate` results for the model card (see [`load_results`]).
        repo_id: the Hub repository the folder is meant for, used in the card's snippets.

    Returns:
        The output folder.
    """
    processor = _as_processor(processor, model)
    model = _as_model(model)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save_weights_and_processor(model, processor, output_dir)
    code_paths = _save_remote_code(output_dir)
    _save_endpoint_files(output_dir, code_paths)
    (output_dir / "app.py").write_text(_template("space_app.py"), encoding="utf-8")
    (output_dir / "README.md").write_text(render_model_card(model.config, results, repo_id), encoding="utf-8")
    return output_dir


def push_to_hub(
    model: str | os.PathLike[str] | MoECLIPModel,
    repo_id: str,
    results: ResultsSource | None = None,
    private: bool = False,
    token: str | None = None,
    processor: MoECLIPProcessor | None = None,
) -> CommitInfo:
    """Export `model` to a temporary folder and upload it as one commit to the model repository `repo_id`.

    The repository is created when missing (`private` applies then). Returns the commit.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moeclip-export-") as folder:
        export_model(model, folder, processor=processor, results=results, repo_id=repo_id)
        return api.upload_folder(
            repo_id=repo_id, repo_type="model", folder_path=folder, commit_message="Upload MoECLIP model"
        )


__all__ = [
    "DEFAULT_BASE_MODEL",
    "base_model_id",
    "eval_results",
    "export_model",
    "load_results",
    "metric_display_name",
    "push_to_hub",
    "render_model_card",
    "results_table",
    "split_front_matter",
]
