"""`pipeline("zero-shot-anomaly-detection")`: MoECLIP on images of any class named in free text."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline

from ..benchmarks import DOMAINS
from ..image_io import read_image
from ..modeling.maps import probability_anomaly_map
from ..modeling.prompts import CLASS_AGNOSTIC_DESCRIPTION, is_known_class
from .task import OUTPUT_FORMATS
logger = logging.getLogger(__name__)


class ZeroShotAnomalyDetectionPipeline(Pipeline):
    """Anomaly score, verdict and map for images of a class the model may never have seen.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> import moeclip_hf  # registers the task
    >>> detector = pipeline("zero-shot-anomaly-detection", model="path/to/moeclip")  # doctest: +SKIP
    >>> result = detector("part.png", class_name="metal nut")  # doctest: +SKIP
    >>> sorted(result)  # doctest: +SKIP
    ['anomaly_map', 'is_anomalous', 'score', 'threshold']

    ```

    Each result holds `score` (float in [0, 1]), `is_anomalous` (`score >= threshold`), `threshold`
    (the model config's `anomaly_threshold` unless given) and `anomaly_map`, a grayscale PIL image of the
    input's size (0-255 for anomaly probability 0-1). With `output_format="segmentation"` each result is
    instead the Hub image-segmentation shape, `[{"label": "anomaly", "score": ..., "mask": PIL image}]`,
    where the mask holds 255 where the map reaches the threshold; with `output_format="array"` the
    `anomaly_map` is the float32 array of the probabilities themselves, the values the mask thresholds and
    the overlays draw.

    The image is read once (`moeclip_hf.image_io.read_image`: paths, URLs, base64, bytes, PIL images and
    arrays) and resized once to the model's input; the map is upsampled once, from the patch grid straight to
    the input's size.

    The class name is turned into the benchmark description when it is one of the 14 benchmarks'
    classes, used as written otherwise, and replaced by "object" when empty. The map is the
    single-image definition of METHOD.md ("Outputs"); it needs no statistics of other images.
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def _sanitize_parameters(
        self,
        class_name: str | None = None,
        threshold: float | None = None,
        output_format: str | None = None,
        domain: str | None = None,
        dataset: str | None = None,
        **kwargs,
    ):
        preprocess, forward, postprocess = {}, {}, {}
        if class_name is not None:
            preprocess["class_name"] = class_name
        if dataset is not None:
            preprocess["dataset"] = dataset
        if domain is not None:
            forward["domain"] = domain
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must lie in [0, 1]; got {threshold}.")
            postprocess["threshold"] = float(threshold)
        if output_format is not None:
            if output_format not in OUTPUT_FORMATS:
                raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}; got {output_format!r}.")
            postprocess["output_format"] = output_format
        return preprocess, forward, postprocess

    def __call__(self, images, **kwargs) -> dict[str, Any] | list:
        """Detect anomalies in one image (a path, URL, base64 string, bytes, PIL image or array) or a list of them."""
        return super().__call__(images, **kwargs)

    def preprocess(self, image, class_name: str = CLASS_AGNOSTIC_DESCRIPTION, dataset: str | None = None) -> dict[str, Any]:
        picture = read_image(image)
        if not class_name or not class_name.strip():
            logger.warning("Empty class name: using the class-agnostic description %r.", CLASS_AGNOSTIC_DESCRIPTION)
        elif not is_known_class(class_name):
            logger.info("Class %r is not a benchmark class: its name is used as the prompt description.", class_name)
        inputs = self.processor(
            images=picture,
            class_names=[class_name],
            dataset=dataset,
            return_tensors="pt",
            class_descriptions=self.model.config.class_descriptions,
        )
        inputs["original_size"] = torch.tensor([[picture.height, picture.width]])  # (1, 2): batches along dim 0
        return inputs

    def _forward(self, model_inputs: dict[str, Any], domain: str | None = None) -> dict[str, Any]:
        original_size = model_inputs.pop("original_size")
        outputs = self.model(**model_inputs, domain=domain)
        # Every value has the batch first, so that a batched call (`batch_size` > 1) splits it per image.
        domain_index = DOMAINS.index(domain or self.model.config.domain)
        return {
            "patch_logits": outputs.patch_logits,
            "anomaly_score": outputs.anomaly_score,
            "original_size": original_size,
            "domain_index": torch.full((outputs.patch_logits.shape[0],), domain_index),
        }

    def postprocess(self, model_outputs: dict[str, Any], threshold: float | None = None, output_format: str = "anomaly"):
        if threshold is None:
            threshold = float(self.model.config.anomaly_threshold)
        height, width = (int(side) for side in model_outputs["original_size"].reshape(-1)[:2])
        config, domain = self.model.config, DOMAINS[int(model_outputs["domain_index"].reshape(-1)[0])]
        logits = model_outputs["patch_logits"].float()
        full_size = probability_anomaly_map(
            logits.reshape(1, -1, *logits.shape[-3:]),
            (height, width),
            config.blur_kernel_sizes[domain],
            config.blur_sigmas[domain],
        )[0].cpu().numpy()
        score = float(model_outputs["anomaly_score"].reshape(-1)[0])
        if output_format == "segmentation":
            mask = Image.fromarray(np.where(full_size >= threshold, 255, 0).astype(np.uint8))
            return [{"label": "anomaly", "score": score, "mask": mask}]
        anomaly_map = full_size if output_format == "array" else Image.fromarray(np.round(full_size * 255).astype(np.uint8))
        return {"score": score, "is_anomalous": score >= threshold, "threshold": threshold, "anomaly_map": anomaly_map}


__all__ = ["ZeroShotAnomalyDetectionPipeline"]
