"""Scoring uploads for the web app: one image or a batch, through a zero-shot-anomaly-detection pipeline.

The detector is any such pipeline: the package's own (`moeclip serve`) or an exported repository's remote code
(the Space). Requests share one model, so calls are serialised. A result keeps the map's float values, so the
verdict, the overlay and its contour follow a new threshold without running the model again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..benchmarks import BENCHMARKS
from ..inference.visualization import overlay
from .uploads import MAX_BATCH_FILES, MAX_PIXELS, MAX_UPLOAD_BYTES, UploadRejected, load_upload, upload_name

#: Vision towers narrower than this are toy models (the tests' and `moeclip demo`'s); the page says so.
TINY_HIDDEN_SIZE = 256


@dataclass
class Analysis:
    """One image's result: the RGB image, its score and map (float [0, 1], the image's size)."""

    name: str
    image: Image.Image
    score: float
    anomaly_map: np.ndarray

    def is_anomalous(self, threshold: float) -> bool:
        return self.score >= threshold


def default_threshold(detector: Any) -> float:
    """The model's `anomaly_threshold` (0.5 when the config has none)."""
    return float(getattr(detector.model.config, "anomaly_threshold", 0.5))


def check_threshold(threshold: float | None, detector: Any) -> float:
    """The verdict's threshold: the given one, checked to lie in [0, 1], or the model's default."""
    if threshold is None:
        return default_threshold(detector)
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise UploadRejected(f"The threshold must lie in [0, 1]; got {threshold}.")
    return threshold


#: Serialises the model calls of the app's requests, which share one model.
MODEL_LOCK = threading.Lock()


def run_detector(detector: Any, image: Image.Image, class_name: str | None, name: str = "image") -> Analysis:
    """One pipeline call (serialised: the app's requests share one model) as an `Analysis`."""
    with MODEL_LOCK:
        result = detector(image, class_name=(class_name or "").strip(), output_format="array")
    return Analysis(name=name, image=image, score=float(result["score"]), anomaly_map=result["anomaly_map"])


def verdict_text(score: float, threshold: float) -> str:
    """`ANOMALOUS` or `normal`, with the comparison that decided it (Markdown)."""
    if score >= threshold:
        return f"**ANOMALOUS**: score {score:.4f} ≥ threshold {threshold:.2f}"
    return f"**normal**: score {score:.4f} < threshold {threshold:.2f}"


def render_analysis(analysis: Analysis, threshold: float) -> tuple[float, str, Image.Image, Image.Image]:
    """(score, verdict, overlay, raw map) of an analysis at a threshold, without running the model again.

    The overlay is `moeclip detect`'s (`moeclip_hf.inference.visualization.overlay`), its contour drawn on the
    map's float values; the raw map is those values as grey levels, as the pipeline's `anomaly_map` image.
    """
    raw = Image.fromarray(np.round(np.clip(analysis.anomaly_map, 0, 1) * 255).astype(np.uint8))
    picture = overlay(analysis.image, analysis.anomaly_map, threshold)
    return analysis.score, verdict_text(analysis.score, threshold), picture, raw


def analyse_image(
    detector: Any,
    image: Any,
    class_name: str | None,
    threshold: float | None = None,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> tuple[float, str, Image.Image, Image.Image]:
    """Score one upload: `(score, verdict Markdown, heat-map overlay, raw map)`; the maps have the image's size.

    `detector` is a zero-shot-anomaly-detection pipeline, `image` a path, Gradio file object or PIL image,
    `threshold` the verdict's (and the overlay contour's) threshold, by default the model's. An unfit upload
    raises `UploadRejected` (a `ValueError`) with a message for the page, before the model runs.
    """
    threshold = check_threshold(threshold, detector)
    picture = load_upload(image, max_bytes=max_bytes, max_pixels=max_pixels)
    analysis = run_detector(detector, picture, class_name, upload_name(image))
    return render_analysis(analysis, threshold)


@dataclass
class BatchResult:
    """A batch: its table rows, sorted by score (highest first), the overlays in that order, the refusals."""

    rows: list[list[Any]]
    overlays: list[tuple[Image.Image, str]]
    refused: list[str]

    HEADERS = ("rank", "file", "score", "verdict")


def analyse_batch(
    detector: Any,
    files: Sequence[Any] | None,
    class_name: str | None,
    threshold: float | None = None,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_files: int = MAX_BATCH_FILES,
) -> BatchResult:
    """Score several uploads of one class; the rows `[rank, file, score, verdict]` are sorted by score, highest first.

    Unfit files are skipped and listed in `refused` with their reason; more than `max_files` files are refused
    as a whole.
    """
    threshold = check_threshold(threshold, detector)
    files = list(files or [])
    if not files:
        raise UploadRejected("No images: upload one or more image files first.")
    if len(files) > max_files:
        raise UploadRejected(f"{len(files)} files is more than the {max_files} one batch may hold.")
    analyses, refused = [], []
    for source in files:
        try:
            picture = load_upload(source, max_bytes=max_bytes, max_pixels=max_pixels)
        except UploadRejected as error:
            refused.append(str(error))
            continue
        analyses.append(run_detector(detector, picture, class_name, upload_name(source)))
    analyses.sort(key=lambda analysis: analysis.score, reverse=True)
    rows, overlays = [], []
    for rank, analysis in enumerate(analyses, start=1):
        verdict = "ANOMALOUS" if analysis.is_anomalous(threshold) else "normal"
        rows.append([rank, analysis.name, round(analysis.score, 4), verdict])
        picture = overlay(analysis.image, analysis.anomaly_map, threshold)
        overlays.append((picture, f"{rank}. {analysis.name}: {analysis.score:.4f} ({verdict})"))
    return BatchResult(rows, overlays, refused)


def class_suggestions() -> list[tuple[str, str]]:
    """Dropdown choices `(label, description)`: each distinct class description of the benchmarks, labelled with
    the benchmark classes that use it (`moeclip_hf.benchmarks`)."""
    users: dict[str, list[str]] = {}
    for benchmark in BENCHMARKS.values():
        for class_name, description in benchmark.descriptions.items():
            users.setdefault(description, []).append(f"{benchmark.display_name} {class_name}")
    choices = []
    for description, classes in sorted(users.items(), key=lambda item: item[0].lower()):
        shown = ", ".join(classes[:3]) + (f" +{len(classes) - 3}" if len(classes) > 3 else "")
        choices.append((f"{description} ({shown})", description))
    return choices


def model_summary(detector: Any, model_name: str | None = None) -> str:
    """A Markdown line on the loaded model: name, input size and width, default threshold; a warning for toys."""
    config = detector.model.config
    vision = getattr(config, "vision_config", None)
    width = getattr(vision, "hidden_size", None)
    name = model_name or getattr(config, "_name_or_path", "") or "model"
    line = (
        f"**Model**: `{Path(str(name)).name or name}`; input {getattr(config, 'image_size', '?')} px, "
        f"vision width {width if width is not None else '?'}; default threshold {default_threshold(detector):g}."
    )
    if isinstance(width, int) and width < TINY_HIDDEN_SIZE:
        line += (
            f"\n\n⚠️ **This is a tiny model** (vision width {width} < {TINY_HIDDEN_SIZE}): it exists for tests and "
            "demos, and its scores and maps are noise."
        )
    return line


__all__ = [
    "MODEL_LOCK",
    "TINY_HIDDEN_SIZE",
    "Analysis",
    "BatchResult",
    "analyse_batch",
    "analyse_image",
    "check_threshold",
    "class_suggestions",
    "default_threshold",
    "model_summary",
    "render_analysis",
    "run_detector",
    "verdict_text",
]
