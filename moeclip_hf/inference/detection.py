"""Scoring image files with a saved model and writing overlays: the work behind `moeclip detect`.

Each image is read once (`moeclip_hf.image_io.read_image`) and handed to the pipeline as RGB; the map comes back
as float values at the image's size (`output_format="array"`), and the overlay's contour is drawn on those
values, the same the pipeline's segmentation masks threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import pipeline

from ..image_io import read_image
from .registration import register
from .task import TASK
from .visualization import overlay


@dataclass
class Detection:
    """One image's result: its score, verdict and the overlay picture written for it."""

    path: Path
    score: float
    is_anomalous: bool
    threshold: float
    overlay_path: Path


def detect_images(
    model: str,
    images: Sequence[str | Path],
    class_name: str,
    output_dir: str | Path,
    threshold: float | None = None,
    domain: str | None = None,
) -> list[Detection]:
    """Run the zero-shot anomaly detection pipeline over image files and write `<name>_overlay.png` per image."""
    paths = [Path(image) for image in images]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
    register()
    detector = pipeline(TASK, model=str(model))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options = {"class_name": class_name, "threshold": threshold, "domain": domain}
    detections = []
    for path in paths:
        picture = read_image(path)
        result = detector(picture, output_format="array", **{key: value for key, value in options.items() if value is not None})
        overlay_path = output_dir / f"{path.stem}_overlay.png"
        overlay(picture, result["anomaly_map"], result["threshold"]).save(overlay_path)
        detections.append(Detection(path, result["score"], result["is_anomalous"], result["threshold"], overlay_path))
    return detections


__all__ = ["Detection", "detect_images"]
