"""Evaluation: exact, fast anomaly detection metrics, per-class accumulation, `evaluate` module."""

from pathlib import Path
from typing import TYPE_CHECKING

from .accumulator import INDUSTRIAL_SCORE_FUSION_WEIGHT
from .accumulator import MEDICAL_SCORE_FUSION_WEIGHT
from .accumulator import METRIC_NAMES
from .accumulator import ClassMetricAccumulator
from .accumulator import fuse_image_scores
from .accumulator import normalize_class_maps
from .metrics import aupro
from .metrics import auroc
from .metrics import average_precision
from .metrics import classification_metrics
from .metrics import f1_max
from .metrics import has_both_classes
from .metrics import segmentation_metrics

if TYPE_CHECKING:
    import evaluate

METRIC_MODULE_PATH = Path(__file__).parent / "anomaly_detection"
"""Folder of the `evaluate` module, for `evaluate.load(str(METRIC_MODULE_PATH))`."""


def load_metric(config_name: str = "image", **kwargs) -> "evaluate.EvaluationModule":
    """The `evaluate` metric of this package, loaded from the installed folder, offline.

    Args:
        config_name: "image" for one score and label per example, "pixel" for one map
            and mask per example (adds AUPRO).
        **kwargs: passed to `evaluate.load` (e.g. `cache_dir`, `keep_in_memory`).

    Returns:
        An `evaluate.Metric` whose `compute` returns the numbers of `classification_metrics`
        ("image") or `segmentation_metrics` ("pixel").
    """
    # `evaluate` imports `datasets` and pandas; importing it here keeps
    # `import moeclip_hf.evaluation` light for code that only needs the functions.
    import evaluate

    return evaluate.load(str(METRIC_MODULE_PATH), config_name=config_name, **kwargs)


__all__ = [
    "INDUSTRIAL_SCORE_FUSION_WEIGHT",
    "MEDICAL_SCORE_FUSION_WEIGHT",
    "METRIC_MODULE_PATH",
    "METRIC_NAMES",
    "ClassMetricAccumulator",
    "aupro",
    "auroc",
    "average_precision",
    "classification_metrics",
    "f1_max",
    "fuse_image_scores",
    "has_both_classes",
    "load_metric",
    "normalize_class_maps",
    "segmentation_metrics",
]
