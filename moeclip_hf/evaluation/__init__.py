"""Evaluation: exact, fast anomaly detection metrics, per-class accumulation, the benchmark runner, `evaluate`.

Modules: `inputs` (checking scores, labels, maps), `metrics` (AUROC, AP, F1-max, AUPRO with one sort),
`accumulator` (one class, batch by batch, with the MoECLIP protocol), `runner` (a model over a benchmark into
per-class tables), `anomaly_detection/` (the 🤗 `evaluate` module). Attributes are imported on first use, so
`import moeclip_hf.evaluation` loads neither torch nor scipy.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    import evaluate

#: The two ways `moeclip evaluate` turns outputs into metrics (see `moeclip_hf.evaluation.runner`).
PROTOCOLS = ("moeclip", "probability")

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
    import evaluate  # imports `datasets` and pandas: only when the module is wanted

    return evaluate.load(str(METRIC_MODULE_PATH), config_name=config_name, **kwargs)


_HOMES = {
    "ClassMetricAccumulator": ".accumulator",
    "normalize_class_maps": ".accumulator",
    "aupro": ".metrics",
    "auroc": ".metrics",
    "average_precision": ".metrics",
    "classification_metrics": ".metrics",
    "f1_max": ".metrics",
    "has_both_classes": ".metrics",
    "segmentation_metrics": ".metrics",
    "BenchmarkResult": ".runner",
    "evaluate_dataset": ".runner",
    "write_results": ".runner",
}
__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
__all__ = ["METRIC_MODULE_PATH", "PROTOCOLS", "load_metric", *sorted(_HOMES)]
