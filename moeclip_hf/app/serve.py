"""`moeclip serve`: a Gradio app on a saved model (optional extra: `pip install "moeclip-hf[app]"`).

The page has three tabs:

- **Detect**: upload an image (or pick an example), name its class (suggestions: the 14 benchmarks' class
  descriptions; free text works too), see the anomaly score, the verdict at an adjustable threshold, the
  heat-map overlay (as `moeclip detect` draws it) and the raw map;
- **Routing**: the routing maps and per-layer anomaly maps of `moeclip explain` for the same image;
- **Batch**: several images of one class, a table sorted by score and their overlays.

The model is loaded once and every request runs through the package's zero-shot-anomaly-detection
pipeline. Uploads over 20 MB or 50 megapixels, and files that are not PNG/JPEG/BMP/TIFF/WebP/GIF images,
are refused with a message on the page before anything is decoded. Everything written (Gradio's upload
cache, result images, explanation figures, the example images) goes to one temporary folder owned by the
app and deleted with it. The UI itself is `moeclip_hf/export_templates/space_app.py`, which is also the
`app.py` of an exported repository (a Hugging Face Space): see [`write_space_app`].

```python
>>> from moeclip_hf.app import build_app, launch  # doctest: +SKIP
>>> launch("path/to/model", host="127.0.0.1", port=7860)  # doctest: +SKIP
```
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .ui import (
    IMAGE_FORMATS,
    MAX_BATCH_FILES,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    Analysis,
    BatchResult,
    UploadRejected,
    build_demo,
    close_demo,
    launch_demo,
    load_upload,
    suggestions_from_descriptions,
)
from .ui import analyse_batch as _analyse_batch
from .ui import analyse_image as _analyse_image
from ..modeling.prompts import CLASS_DESCRIPTIONS
from ..inference.pipeline import TASK, ZeroShotAnomalyDetectionPipeline
from ..serve import DEFAULT_HOST, DEFAULT_PORT, add_serve_parser, run_serve
from ..inference.visualization import overlay

SPACE_APP_TEMPLATE = "ui.py"
#: Synthetic example images shown under the Detect tab: (category, defect, class name typed for it, seed).
EXAMPLES = (
    ("hex_nut", "scratch", "hex nut", 3),
    ("checkers", "hole", "checkered tiles", 1),
    ("tablet", None, "round white tablet", 2),
)
EXAMPLE_SIZE = 256
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def overlay_picture(image: Image.Image, anomaly_map: np.ndarray, threshold: float) -> Image.Image:
    """The overlay `moeclip detect` writes: jet heat map blended at 50 % and the white threshold contour."""
    return overlay(image, anomaly_map, threshold)


def load_detector(model: Any) -> ZeroShotAnomalyDetectionPipeline:
    """The package's pipeline for a model folder or Hub id (loaded once); a pipeline is returned as it is.

    The package's own pipeline class is used even for an exported folder whose config names remote code,
    so no downloaded code runs.
    """
    if isinstance(model, ZeroShotAnomalyDetectionPipeline):
        return model
    if callable(model) and hasattr(model, "model"):
        return model
    from transformers import pipeline

    path = os.fspath(model)
    if not Path(path).exists() and not _HUB_ID.match(path):
        raise FileNotFoundError(f"model not found: {path} is neither a folder nor a Hub id")
    return pipeline(TASK, model=path, pipeline_class=ZeroShotAnomalyDetectionPipeline)


def analyse_image(
    detector: Any, image: Any, class_name: str | None, threshold: float | None = None, **limits: int
) -> tuple[float, str, Image.Image, Image.Image]:
    """Score one image through the pipeline: `(score, verdict Markdown, overlay, raw map)`, both maps at the image's size.

    `image` is a file path (what the page uploads), a Gradio file object or a PIL image. Non-images, files
    over `max_bytes` (20 MB) and images over `max_pixels` (50 megapixels) raise [`UploadRejected`] (a
    `ValueError`) with the message the page shows, before the model runs. `threshold` decides the verdict
    and the overlay's contour; by default the model's `anomaly_threshold`.
    """
    return _analyse_image(detector, image, class_name, threshold, overlay_fn=overlay_picture, **limits)


def analyse_batch(
    detector: Any, files: Any, class_name: str | None, threshold: float | None = None, **limits: int
) -> BatchResult:
    """Score several images of one class: table rows `[rank, file, score, verdict]` sorted by score (highest
    first), the overlays in that order, and the refused files with their reasons."""
    return _analyse_batch(detector, files, class_name, threshold, overlay_fn=overlay_picture, **limits)


def explain_routing(detector: Any, image: Image.Image, class_name: str, output_dir: Path) -> tuple[list, str]:
    """`moeclip explain` on one image into `output_dir`: its figures (routing per MoE layer, then the anomaly
    maps per layer and scale) as `(PIL image, caption)` pairs, and the report's Markdown."""
    from ..analysis import explain_image

    report = explain_image(detector.model, detector.processor, image, class_name, output_dir)
    captions = {
        path: f"patch routing, MoE layer {int(path.stem.removeprefix('routing_layer'))}"
        for path in sorted(output_dir.glob("routing_layer*.png"))
    }
    captions[output_dir / "anomaly_maps.png"] = "anomaly maps per feature layer and scale"
    figures = []
    for path, caption in captions.items():
        if path.is_file():
            with Image.open(path) as figure:
                figures.append((figure.convert("RGB"), caption))
    return figures, report.read_text(encoding="utf-8")


def write_examples(folder: Path) -> list[tuple[str, str]]:
    """Render the synthetic example images into `folder` (inside the app's temporary folder)."""
    from ..data.synthetic import render

    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for category, defect, class_name, seed in EXAMPLES:
        path = folder / f"{category}_{defect or 'good'}.png"
        Image.fromarray(render(category, defect, image_size=EXAMPLE_SIZE, seed=seed).image).save(path)
        examples.append((str(path), class_name))
    return examples


def class_suggestions() -> list[tuple[str, str]]:
    """The Dropdown's choices: each distinct description of the 14 benchmarks' classes, labelled with its classes."""
    return suggestions_from_descriptions(CLASS_DESCRIPTIONS)


def build_app(model_path_or_pipeline: Any, examples: bool = True):
    """The Gradio Blocks of the app (three tabs; see the module docstring) around one loaded model.

    The app's temporary folder is `app.moeclip_workspace` (`GRADIO_TEMP_DIR` points there: one app per
    process). Serve it with [`launch`]; [`close_demo`] stops it and deletes the folder.
    """
    detector = load_detector(model_path_or_pipeline)
    name = None if callable(model_path_or_pipeline) else os.fspath(model_path_or_pipeline)
    return build_demo(
        detector,
        suggestions=class_suggestions(),
        explain_fn=explain_routing,
        overlay_fn=overlay_picture,
        examples_fn=write_examples if examples else None,
        model_name=name,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def launch(model: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs):
    """Serve the app for `model` (a folder, Hub id, pipeline, or an app from [`build_app`]) on `host:port`.

    Blocks until interrupted unless `prevent_thread_lock=True` is passed (then returns the running app).
    Never creates a share link. Binding to a non-loopback address exposes the app to the network; a notice says so.
    """
    import gradio as gr

    app = model if isinstance(model, gr.Blocks) else build_app(model)
    if not is_loopback(host):
        print(f"moeclip serve: listening on {host}, reachable from other machines.", file=sys.stderr)
    launch_demo(app, host=host, port=port, **kwargs)
    return app


# ------------------------------------------------------------------------------------------ the Space


def space_app_source() -> str:
    """The source of the Space app (`export_templates/space_app.py`), as written to an export's `app.py`."""
    return resources.files(__package__).joinpath(SPACE_APP_TEMPLATE).read_text(encoding="utf-8")


def write_space_app(folder: str | os.PathLike[str]) -> Path:
    """Write `app.py`, the Gradio Space app, at the root of an exported repository folder; returns its path.

    It runs on the folder's own remote code (`trust_remote_code=True`) where `moeclip_hf` is not installed.
    The Space needs `sdk: gradio` and `app_file: app.py` in the README's front matter; gradio itself is
    installed by the Space's SDK, so `requirements.txt` needs no change.
    """
    path = Path(folder) / "app.py"
    path.write_text(space_app_source(), encoding="utf-8")
    return path


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "IMAGE_FORMATS",
    "MAX_BATCH_FILES",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "Analysis",
    "BatchResult",
    "UploadRejected",
    "add_serve_parser",
    "analyse_batch",
    "analyse_image",
    "build_app",
    "class_suggestions",
    "close_demo",
    "explain_routing",
    "launch",
    "load_detector",
    "load_upload",
    "run_serve",
    "space_app_source",
    "write_examples",
    "write_space_app",
]
