"""Scoring image files with a saved model and writing overlays: the work behind `moeclip detect`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import pipeline

from ..data.images import read_image
from .pipeline import TASK
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
    detector = pipeline(TASK, model=str(model))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options = {"class_name": class_name, "threshold": threshold, "domain": domain}
    detections = []
    for path in paths:
        picture = read_image(path)
        result = detector(picture, **{key: value for key, value in options.items() if value is not None})
        anomaly_map = np.asarray(result["anomaly_map"], dtype=np.float32) / 255.0
        overlay_path = output_dir / f"{path.stem}_overlay.png"
        overlay(picture, anomaly_map, result["threshold"]).save(overlay_path)
        detections.append(Detection(path, result["score"], result["is_anomalous"], result["threshold"], overlay_path))
    return detections


__all__ = ["Detection", "detect_images"]
