"""Exporting MoECLIP to the Hugging Face Hub: the repository folder and its upload.

An exported folder is a complete Hub repository:

- `model.safetensors` and `config.json` (with `auto_map` and `custom_pipelines` for remote code),
- the processor (`processor_config.json`, the tokenizer files) and `preprocessor_config.json`, which the
  Hub widget and `AutoImageProcessor` look for,
- the model code as flat remote-code files (see `moeclip_hf.hub.remote_code`), so that
  `AutoModel.from_pretrained(repo, trust_remote_code=True)` and
  `pipeline("zero-shot-anomaly-detection", model=repo, trust_remote_code=True)` work without `moeclip_hf`,
- `handler.py` and `requirements.txt` for Inference Endpoints, and `app.py`, the web app as a Hugging Face
  Space: both generated from the package's sources into single files (`remote_code.bundle_source`),
- `README.md`, the model card (`moeclip_hf.hub.model_card`), with the latest `moeclip evaluate` results.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from .model_card import ResultsSource, render_model_card
from .remote_code import auto_map, bundle_source, custom_pipelines, requirements, write_remote_code

#: The scripts of an export, and the package module each is generated from.
SCRIPTS = {"handler.py": "moeclip_hf.hub.handler", "app.py": "moeclip_hf.app.space"}
#: Installed by the Space's SDK (`sdk: gradio`), so not a line of requirements.txt: an endpoint does not need it.
PROVIDED_BY_SPACES = ("gradio",)

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


def _save_scripts(folder: Path, code_paths: list[Path]) -> None:
    """Write handler.py and app.py, and the requirements.txt of everything the exported code imports."""
    scripts = []
    for name, module in SCRIPTS.items():
        path = folder / name
        path.write_text(bundle_source(module), encoding="utf-8")
        scripts.append(path)
    lines = requirements([*code_paths, *scripts], provided=PROVIDED_BY_SPACES)
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
    _save_scripts(output_dir, code_paths)
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


__all__ = ["export_model", "push_to_hub"]
