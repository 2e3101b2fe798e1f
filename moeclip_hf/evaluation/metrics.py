"""Exact, fast ranking metrics for anomaly detection: AUROC, AP, F1-max and AUPRO.

scikit-learn's `roc_auc_score` and `average_precision_score` argsort every score (a stable
comparison sort of 64-bit indices) and build several cumulative arrays as long as the
input: for the ~30 million pixels of a benchmark class that is seconds of time and
gigabytes of memory per metric. Yet each of these metrics depends only on a few numbers
per *distinct score of a positive*: how much positive weight sits at that score, and how
many negatives score strictly above it and exactly at it. So this module sorts a copy of
the scores once, in place (in a few independent runs, one per thread), and locates each
distinct positive score in it by binary search.

Ties are handled as scikit-learn does (one threshold per distinct score, `-0.0 == 0.0`),
so the results agree with it to floating-point rounding, while one class of 30 M pixels
costs a copy and a sort of its scores. All public functions accept torch tensors (moved
to the CPU) or numpy arrays of any shape (flattened), labels as 0/1 or bool, and return
Python floats.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from scipy import ndimage

from .inputs import (
    ArrayLike,
    as_labels,
    check_fpr_limit,
    require_both_classes,
    require_positive,
    validated,
    validated_maps,
)
# Sorting runs: at most one per torch thread and per 1 M scores (shorter runs gain little
# time), and at most 4, since every run adds one binary search per positive score.
_MIN_RUN_LENGTH = 1 << 20
_MAX_RUNS = 4

# Links each pixel to its 8 neighbours within an image and to nothing in the images before
# or after it in a (N, H, W) stack: the MVTec AD evaluation's 3 x 3 structure, per image.
_IN_PLANE_EIGHT_CONNECTIVITY = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE_EIGHT_CONNECTIVITY[1] = True


@dataclass(frozen=True)
class _ThresholdCounts:
    """What every metric here needs, at each distinct positive score, highest first.

    Lowering the threshold to a positive score `v` admits the positives at `v` together
    with the negatives tied with them; the negatives above `v` came in before, at
    thresholds where only the false-positive count moves. So these fields fix every
    point of the ROC, precision/recall and PRO curves that the metrics need.

    Attributes:
        positives: weight of the positives at each score (their count, or for AUPRO the
            sum of their per-region weights), float64.
        negatives_above: number of negatives scoring strictly higher, float64.
        tied_negatives: number of negatives scoring exactly the same, float64.
        num_negatives: number of negatives in total.
    """

    positives: torch.Tensor
    negatives_above: torch.Tensor
    tied_negatives: torch.Tensor
    num_negatives: int

    @property
    def true_positives(self) -> torch.Tensor:
        """Positive weight at or above each threshold."""
        return self.positives.cumsum(0)

    @property
    def false_positives(self) -> torch.Tensor:
        """Negatives at or above each threshold."""
        return self.negatives_above + self.tied_negatives


@dataclass(frozen=True)
class _Ranking:
    """Where the distinct positive scores fall among all scores, highest first.

    One sort serves every weighting of the positives: unit weights for AUROC, AP and
    F1-max, one over the region size for AUPRO.

    Attributes:
        order: indices that sort the positives by descending score.
        inverse: for each positive in that order, the index of its distinct score.
        counts: number of positives at each distinct score.
        below: number of scores, of either class, strictly below each distinct score.
        at_or_below: number of scores at or below each distinct score.
        num_scores: number of scores in total.
    """

    order: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor
    below: torch.Tensor
    at_or_below: torch.Tensor
    num_scores: int

    def threshold_counts(self, positive_weights: torch.Tensor | None = None) -> _ThresholdCounts:
        """The counts under the given weight per positive (aligned with the input), or one each.

        The negatives around a score are all scores there minus the positives there, which
        the positives' own sort already counted.
        """
        if positive_weights is None:
            positives = self.counts.to(torch.float64)
        else:
            positives = torch.zeros(self.counts.numel(), dtype=torch.float64).index_add_(
                0, self.inverse, positive_weights[self.order]
            )
        positives_above = self.counts.cumsum(0) - self.counts
        return _ThresholdCounts(
            positives=positives,
            negatives_above=(self.num_scores - self.at_or_below - positives_above).to(torch.float64),
            tied_negatives=(self.at_or_below - self.below - self.counts).to(torch.float64),
            num_negatives=self.num_scores - int(self.counts.sum()),
        )


def has_both_classes(labels: ArrayLike) -> bool:
    """Whether `labels` holds both a 0 and a 1, i.e. whether AUROC is defined for them.

    Callers that must not stop on a single-label class (a benchmark class whose test
    images are all anomalous) check this and skip the metric; the metric functions
    themselves raise instead of returning a number that means nothing.
    """
    flat = as_labels(labels, "labels")
    return bool(flat.any()) and not bool(flat.all())


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, equal to scikit-learn's `roc_auc_score`.

    Raises:
        ValueError: on non-finite scores, labels other than 0/1, mismatched shapes, or
            labels of a single class.
    """
    scores, labels = validated(scores, labels, "scores", "labels")
    require_both_classes(labels, "labels", "AUROC")
    return _auroc(_rank(scores, labels, "scores").threshold_counts())


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision, equal to scikit-learn's `average_precision_score`.

    AP = sum over distinct thresholds, highest first, of (R_n - R_{n-1}) * P_n: the
    step-wise area under the precision/recall curve, without interpolation.

    Raises:
        ValueError: on non-finite scores, labels other than 0/1, mismatched shapes, or
            labels without any positive.
    """
    scores, labels = validated(scores, labels, "scores", "labels")
    require_positive(labels, "labels", "average precision")
    return _average_precision(_rank(scores, labels, "scores").threshold_counts())


def f1_max(scores: ArrayLike, labels: ArrayLike) -> float:
    """Largest F1 score over all thresholds of the precision/recall curve.

    F1 = 2 P R / (P + R) = 2 TP / (TP + FP + #positives), computed exactly from counts.

    Raises:
        ValueError: on non-finite scores, labels other than 0/1, mismatched shapes, or
            labels without any positive.
    """
    scores, labels = validated(scores, labels, "scores", "labels")
    require_positive(labels, "labels", "F1-max")
    return _f1_max(_rank(scores, labels, "scores").threshold_counts())


def aupro(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to a false-positive rate.

    PRO(t) is the mean, over the connected anomalous regions of all masks (8-connected
    within an image), of the fraction of the region's pixels scoring at or above t;
    FPR(t) is the fraction of normal pixels at or above t. The curve (FPR, PRO), one
    point per distinct score and starting at (0, 0), is integrated with the trapezoidal
    rule up to `fpr_limit` (interpolating linearly there) and divided by `fpr_limit`, as
    the MVTec AD evaluation code and anomalib do; 1.0 is a perfect separation.

    Args:
        maps: anomaly maps, shape (N, H, W) or (H, W) for a single image.
        masks: ground-truth masks of the same shape, 0/1 or bool.
        fpr_limit: upper integration limit on the false-positive rate, in (0, 1].

    Raises:
        ValueError: on non-finite maps, masks other than 0/1, mismatched shapes, maps
            that are not 2-D or 3-D, masks without an anomalous or a normal pixel, or a
            limit outside (0, 1].
    """
    maps, masks = validated_maps(maps, masks)
    check_fpr_limit(fpr_limit)
    return _aupro(_rank(maps, masks, "maps").threshold_counts(_region_weights(masks)), fpr_limit)


def classification_metrics(scores: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """AUROC, average precision and F1-max of one set of scores, sharing one sort.

    Returns:
        `{"auroc", "average_precision", "f1_max"}`, each as `auroc`, `average_precision`
        and `f1_max` would return it.
    """
    scores, labels = validated(scores, labels, "scores", "labels")
    require_both_classes(labels, "labels", "AUROC")
    counts = _rank(scores, labels, "scores").threshold_counts()
    return {"auroc": _auroc(counts), "average_precision": _average_precision(counts), "f1_max": _f1_max(counts)}


def segmentation_metrics(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> dict[str, float]:
    """Pixel AUROC, average precision, F1-max and AUPRO of a set of maps, sharing one sort.

    The scores are sorted once; the pixel-level metrics weigh each anomalous pixel by
    one, AUPRO by one over the size of its region.

    Returns:
        `{"auroc", "average_precision", "f1_max", "aupro"}` over all pixels, each as the
        function of the same name would return it.
    """
    maps, masks = validated_maps(maps, masks)
    check_fpr_limit(fpr_limit)
    ranking = _rank(maps, masks, "maps")
    counts = ranking.threshold_counts()
    region_counts = ranking.threshold_counts(_region_weights(masks))
    return {
        "auroc": _auroc(counts),
        "average_precision": _average_precision(counts),
        "f1_max": _f1_max(counts),
        "aupro": _aupro(region_counts, fpr_limit),
    }


def _auroc(counts: _ThresholdCounts) -> float:
    """Mann-Whitney U / (P N): a positive beats the negatives below it, half-beats ties.

    This equals the trapezoidal area under the ROC curve with one point per distinct
    score, which is what scikit-learn integrates.
    """
    negatives_below = counts.num_negatives - counts.negatives_above - counts.tied_negatives
    wins = (counts.positives * (negatives_below + 0.5 * counts.tied_negatives)).sum()
    return float(wins / (counts.positives.sum() * counts.num_negatives))


def _average_precision(counts: _ThresholdCounts) -> float:
    """Sum of recall increments times precision; recall moves only at positive scores."""
    true_positives = counts.true_positives
    precision = true_positives / (true_positives + counts.false_positives)
    return float((counts.positives * precision).sum() / true_positives[-1])


def _f1_max(counts: _ThresholdCounts) -> float:
    """Best F1 over the thresholds at positive scores, where F1 can peak.

    Lowering a threshold past negatives only adds false positives, so between two
    positive scores F1 is highest at the upper one, and below the lowest it only falls.
    """
    true_positives = counts.true_positives
    f1 = 2 * true_positives / (true_positives + counts.false_positives + true_positives[-1])
    return float(f1.max())


def _aupro(counts: _ThresholdCounts, fpr_limit: float) -> float:
    """Area under the (FPR, PRO) polyline up to `fpr_limit`, divided by `fpr_limit`.

    At each positive score the curve first runs flat across the negatives above it, then
    along a straight segment through the tie, admitting the tied negatives and the
    region weight there at once; it ends at (1, 1).
    """
    num_regions = counts.positives.sum()
    overlap_after = counts.true_positives / num_regions
    overlap_before = overlap_after - counts.positives / num_regions
    fpr_before = counts.negatives_above / counts.num_negatives
    fpr_after = counts.false_positives / counts.num_negatives
    origin, end = counts.positives.new_zeros(1), counts.positives.new_ones(1)
    fpr = torch.cat([origin, torch.stack([fpr_before, fpr_after], dim=1).flatten(), end])
    overlap = torch.cat([origin, torch.stack([overlap_before, overlap_after], dim=1).flatten(), end])
    return _area_up_to(fpr, overlap, fpr_limit) / fpr_limit


def _area_up_to(x: torch.Tensor, y: torch.Tensor, x_max: float) -> float:
    """Trapezoidal area under the polyline through (x, y) from x[0] to x_max.

    `x` is non-decreasing and starts at or below `x_max`; the segment that crosses
    `x_max` is cut there, with y interpolated linearly.
    """
    num_inside = int(torch.searchsorted(x, x.new_tensor([x_max]), right=True))
    area = torch.trapezoid(y[:num_inside], x[:num_inside])
    if num_inside < x.numel():
        x0, x1 = x[num_inside - 1], x[num_inside]
        y0, y1 = y[num_inside - 1], y[num_inside]
        y_cut = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area = area + 0.5 * (y0 + y_cut) * (x_max - x0)
    return float(area)


def _rank(scores: torch.Tensor, labels: torch.Tensor, name: str) -> _Ranking:
    """Sort a copy of the scores and locate every distinct positive score in it.

    The positives are read in row-major order of `labels`, the order `_region_weights`
    uses. Non-finite scores, sorted to the ends, are refused here at no extra pass.
    """
    values = scores.reshape(-1).to(_sortable_dtype(scores.dtype), copy=True).numpy()
    positives = torch.from_numpy(values[labels.reshape(-1).numpy()])
    ordered, order = torch.sort(positives, descending=True)
    distinct, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    below, at_or_below = _sort_and_locate(values, distinct.flip(0).numpy(), name)
    return _Ranking(
        order=order,
        inverse=inverse,
        counts=counts,
        below=torch.from_numpy(below).flip(0),
        at_or_below=torch.from_numpy(at_or_below).flip(0),
        num_scores=values.size,
    )


def _sort_and_locate(values: np.ndarray, queries: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Sort `values` in place; count the values below, and at or below, each query.

    `values` is sorted as independent runs, one per thread (numpy releases the GIL while
    it sorts and searches), and never merged: the counts of the runs simply add up.
    `queries` is ascending, which numpy's binary search exploits.
    """
    num_runs = max(1, min(torch.get_num_threads(), _MAX_RUNS, values.size // _MIN_RUN_LENGTH))
    runs = np.array_split(values, num_runs)
    with ThreadPoolExecutor(max_workers=num_runs) as pool:
        located = list(pool.map(partial(_sort_and_search, queries=queries), runs))
    if not all(np.isfinite(run[[0, -1]]).all() for run in runs):
        raise ValueError(f"`{name}` contains NaN or infinite values; scores must be finite")
    return sum(below for below, _ in located), sum(at_or_below for _, at_or_below in located)


def _sort_and_search(run: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One thread's share of `_sort_and_locate`: sort one run in place and search it."""
    run.sort()
    return np.searchsorted(run, queries, side="left"), np.searchsorted(run, queries, side="right")


def _sortable_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scores are sorted in: half floats widen to float32, integers to int64, exactly."""
    if not dtype.is_floating_point:
        return torch.int64
    return torch.float64 if dtype == torch.float64 else torch.float32


def _region_weights(masks: torch.Tensor) -> torch.Tensor:
    """One over the size of its connected region, for each anomalous pixel of `masks`.

    PRO averages the overlap of each ground-truth region, so the pixels of a region share
    a weight of one. Regions are 8-connected within an image, as `scipy.ndimage.label`
    with a 3 x 3 structure finds them in the MVTec AD evaluation code. The weights come
    in row-major order of `masks`, as `masks[masks]` would list the pixels.
    """
    stack = masks.reshape(-1, *masks.shape[-2:]).cpu().numpy()
    regions, _ = ndimage.label(stack, structure=_IN_PLANE_EIGHT_CONNECTIVITY)
    region_of_pixel = torch.from_numpy(regions[stack]).to(torch.int64)
    region_sizes = torch.bincount(region_of_pixel)
    return 1.0 / region_sizes[region_of_pixel].to(torch.float64)


__all__ = [
    "aupro",
    "auroc",
    "average_precision",
    "classification_metrics",
    "f1_max",
    "has_both_classes",
    "segmentation_metrics",
]
