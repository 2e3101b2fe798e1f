"""Exact AUROC, average precision, F1-max and AUPRO for anomaly detection, as an `evaluate` metric.

A thin wrapper: the numbers come from `moeclip_hf.evaluation.metrics`. `evaluate` routes
every prediction through Arrow, which costs seconds per million pixels, so benchmark code
should call those functions directly; this module is for code that speaks `evaluate`.
(The `evaluate` loader reads this file's imports line by line: keep one import a line.)
"""

import datasets
import evaluate
import numpy as np

from moeclip_hf.evaluation.metrics import classification_metrics
from moeclip_hf.evaluation.metrics import segmentation_metrics

_DESCRIPTION = """
Threshold-free metrics of anomaly detection, exact and with scikit-learn's tie handling
(one threshold per distinct score).

Configuration "image" (default): one anomaly score and one 0/1 label per example.
- auroc: area under the ROC curve.
- average_precision: sum over thresholds of (R_n - R_{n-1}) * P_n, as scikit-learn's
  average_precision_score.
- f1_max: the largest F1 score over the thresholds of the precision/recall curve.

Configuration "pixel": one anomaly map (H x W) and one 0/1 mask per example; auroc,
average_precision and f1_max over all pixels, and
- aupro: the area under the per-region-overlap curve up to a false-positive rate of
  `fpr_limit`, divided by `fpr_limit` (regions 8-connected, as in the MVTec AD
  evaluation).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: anomaly scores, higher meaning more anomalous: a float per example
        ("image"), or an H x W map of floats per example ("pixel").
    references: 0 (normal) or 1 (anomalous), shaped like `predictions`. Both labels must
        occur, among the examples ("image") or among the pixels ("pixel").
    fpr_limit: "pixel" only, the AUPRO integration limit in (0, 1]; 0.3 when omitted.

Returns:
    auroc (float), average_precision (float), f1_max (float), and for "pixel" aupro (float).

Examples:
    >>> import moeclip_hf.evaluation
    >>> metric = moeclip_hf.evaluation.load_metric()
    >>> metric.compute(predictions=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1])
    {'auroc': 0.75, 'average_precision': 0.8333333333333333, 'f1_max': 0.8}
"""

_CITATION = """
@inproceedings{park2026moeclip,
  title={MoECLIP: Patch-Specialized Experts for Zero-shot Anomaly Detection},
  author={Park, Jun Yeong and Seo, JunYoung and Kang, Minji and Park, Yu Rang},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2026}
}
@article{bergmann2021mvtec,
  title={The {MVTec} Anomaly Detection Dataset: A Comprehensive Real-World Dataset for Unsupervised Anomaly Detection},
  author={Bergmann, Paul and Batzner, Kilian and Fauser, Michael and Sattlegger, David and Steger, Carsten},
  journal={International Journal of Computer Vision},
  volume={129},
  number={4},
  pages={1038--1059},
  year={2021}
}
"""

_IMAGE_FEATURES = datasets.Features(
    {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
)
_PIXEL_FEATURES = datasets.Features(
    {
        "predictions": datasets.List(datasets.List(datasets.Value("float64"))),
        "references": datasets.List(datasets.List(datasets.Value("int32"))),
    }
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AnomalyDetection(evaluate.Metric):
    """AUROC, average precision, F1-max (and AUPRO for maps) of anomaly scores."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in ("default", "image", "pixel"):
            raise ValueError(f'unknown configuration "{self.config_name}"; use "image" (default) or "pixel"')
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_PIXEL_FEATURES if self.config_name == "pixel" else _IMAGE_FEATURES,
            # Arrow hands Value columns back as numpy arrays, nested maps as lists.
            format=None if self.config_name == "pixel" else "numpy",
            reference_urls=["https://www.mvtec.com/company/research/datasets/mvtec-ad"],
        )

    def _compute(
        self, predictions: np.ndarray | list, references: np.ndarray | list, fpr_limit: float | None = None
    ) -> dict[str, float]:
        """The numbers of `classification_metrics` ("image") or `segmentation_metrics` ("pixel")."""
        if self.config_name != "pixel":
            if fpr_limit is not None:
                raise ValueError('`fpr_limit` applies to the "pixel" configuration only')
            return classification_metrics(predictions, references)
        maps = np.asarray(predictions, dtype=np.float64)
        masks = np.asarray(references)
        return segmentation_metrics(maps, masks, 0.3 if fpr_limit is None else fpr_limit)
