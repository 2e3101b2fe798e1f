"""Specification of `moeclip_hf.evaluation.metrics` and `ClassMetricAccumulator`.

References: scikit-learn for AUROC and AP, its precision/recall curve for F1-max, and a
line-by-line port of the MVTec AD evaluation code (`compute_pro` and `trapezoid`) for AUPRO.

The file is long because it is one subject's whole specification; its sections follow the entry points.
"""

import bisect

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import average_precision_score
from sklearn.metrics import precision_recall_curve
from sklearn.metrics import roc_auc_score

from moeclip_hf.benchmarks import METRIC_NAMES
from moeclip_hf.modeling.maps import fuse_image_score
from moeclip_hf.configuration.configuration_moeclip import DEFAULT_SCORE_FUSION_WEIGHTS
from moeclip_hf.evaluation import ClassMetricAccumulator
from moeclip_hf.evaluation import aupro
from moeclip_hf.evaluation import auroc
from moeclip_hf.evaluation import average_precision
from moeclip_hf.evaluation import classification_metrics
from moeclip_hf.evaluation import f1_max
from moeclip_hf.evaluation import has_both_classes
from moeclip_hf.evaluation import metrics
from moeclip_hf.evaluation import normalize_class_maps
from moeclip_hf.evaluation import segmentation_metrics

TOLERANCE = 1e-9

INDUSTRIAL = DEFAULT_SCORE_FUSION_WEIGHTS["industrial"]


def sklearn_f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    """Max of 2PR / (P + R) over scikit-learn's precision/recall curve (0 where P + R = 0)."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    denominator = precision + recall
    return float(np.max(2 * precision * recall / np.where(denominator > 0, denominator, 1.0)))


def mvtec_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """The MVTec AD evaluation code's AU-PRO: per-pixel cumulative sums, then `trapezoid`."""
    fp_changes = np.zeros(maps.shape)
    pro_changes = np.zeros(maps.shape)
    num_ok_pixels = num_regions = 0
    for index, mask in enumerate(masks):
        labeled, num_components = ndimage.label(mask, np.ones((3, 3), dtype=int))
        num_regions += num_components
        ok = labeled == 0
        num_ok_pixels += ok.sum()
        fp_changes[index][ok] = 1
        for component in range(1, num_components + 1):
            region = labeled == component
            pro_changes[index][region] = 1.0 / region.sum()
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    sorted_scores = maps.ravel()[order]
    fprs = np.cumsum(fp_changes.ravel()[order]) / num_ok_pixels
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(sorted_scores) != 0, True)
    x = np.concatenate([[0.0], np.clip(fprs[keep], None, 1.0), [1.0]])
    y = np.concatenate([[0.0], np.clip(pros[keep], None, 1.0), [1.0]])
    correction = 0.0
    if fpr_limit not in x:
        insert = bisect.bisect(x, fpr_limit)
        y_cut = y[insert - 1] + (y[insert] - y[insert - 1]) * (fpr_limit - x[insert - 1]) / (x[insert] - x[insert - 1])
        correction = 0.5 * (y_cut + y[insert - 1]) * (fpr_limit - x[insert - 1])
    inside = x <= fpr_limit
    x, y = x[inside], y[inside]
    return float((np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction) / fpr_limit)


def assert_agrees_with_sklearn(scores: np.ndarray, labels: np.ndarray) -> None:
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=TOLERANCE)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=TOLERANCE)
    assert f1_max(scores, labels) == pytest.approx(sklearn_f1_max(scores, labels), abs=TOLERANCE)


@st.composite
def scored_labels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Float64 scores, continuous or drawn from a few values (heavy ties), and 0/1 labels of both classes."""
    size = draw(st.integers(min_value=2, max_value=300))
    labels = np.array(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    positive = draw(st.integers(0, size - 1))
    negative = (positive + draw(st.integers(1, size - 1))) % size
    labels[positive], labels[negative] = 1, 0
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    distinct = draw(st.sampled_from([2, 3, 10, None]))
    scores = rng.normal(scale=100.0, size=size) if distinct is None else rng.integers(-2, distinct, size) * 0.25
    return scores, labels


class TestAgreementWithScikitLearn:
    @settings(max_examples=300, deadline=None)
    @given(scored_labels())
    def test_random_and_tied_scores(self, case: tuple[np.ndarray, np.ndarray]) -> None:
        scores, labels = case
        assert has_both_classes(labels)
        assert_agrees_with_sklearn(scores, labels)

    @pytest.mark.parametrize("decimals", [0, 1, 2])
    def test_heavily_tied_large_input(self, decimals: int) -> None:
        rng = np.random.default_rng(decimals)
        labels = rng.random(20_000) < 0.03
        scores = np.round(rng.random(20_000) + 0.2 * labels, decimals)
        assert_agrees_with_sklearn(scores, labels)

    @pytest.mark.parametrize("odd_one_out", [0, 1])
    def test_a_single_element_of_one_class(self, odd_one_out: int) -> None:
        rng = np.random.default_rng(odd_one_out)
        labels = np.full(500, 1 - odd_one_out)
        labels[137] = odd_one_out
        for scores in (rng.random(500), np.round(rng.random(500), 1)):
            assert_agrees_with_sklearn(scores, labels)

    @pytest.mark.parametrize(
        ("scores", "labels"),
        [
            ([0.3, 0.7], [0, 1]),
            ([0.7, 0.3], [0, 1]),
            ([0.5, 0.5], [1, 0]),
            ([0.5, 0.5, 0.5], [1, 0, 1]),
            ([-0.0, 0.0, 1.0], [0, 1, 1]),
            ([-3.5e38, -1e-30, 0.0, 1e-30, 3.4e38], [1, 0, 1, 0, 1]),
        ],
        ids=["ordered", "reversed", "one-tie", "all-tied", "signed-zeros", "extreme-magnitudes"],
    )
    def test_tiny_inputs(self, scores: list[float], labels: list[int]) -> None:
        assert_agrees_with_sklearn(np.array(scores), np.array(labels))

    def test_float32_scores_tie_exactly_where_sklearn_sees_ties(self) -> None:
        rng = np.random.default_rng(7)
        labels = rng.random(50_000) < 0.1
        scores = (rng.random(50_000) + 0.1 * labels).astype(np.float32)
        assert_agrees_with_sklearn(scores, labels)

    def test_integer_scores(self) -> None:
        rng = np.random.default_rng(3)
        labels = rng.random(1_000) < 0.5
        assert_agrees_with_sklearn(rng.integers(-5, 5, 1_000) + labels, labels)

    def test_any_shape_and_tensor_input_are_flattened(self) -> None:
        rng = np.random.default_rng(11)
        maps = rng.random((4, 8, 9))
        masks = rng.random((4, 8, 9)) < 0.2
        assert auroc(torch.from_numpy(maps), torch.from_numpy(masks)) == pytest.approx(
            roc_auc_score(masks.ravel(), maps.ravel()), abs=TOLERANCE
        )
        assert average_precision(maps, masks.astype(np.float32)) == pytest.approx(
            average_precision_score(masks.ravel(), maps.ravel()), abs=TOLERANCE
        )


class TestSortRuns:
    """Large inputs are sorted as independent runs, one per thread; nothing may depend on it."""

    @pytest.mark.parametrize("num_threads", [2, 3, 4])
    def test_runs_give_the_single_sort_numbers(self, monkeypatch: pytest.MonkeyPatch, num_threads: int) -> None:
        rng = np.random.default_rng(num_threads)
        masks = ndimage.uniform_filter(rng.random((5, 30, 40)), size=(1, 5, 5)) > 0.6
        maps = np.round(rng.random((5, 30, 40)) + 0.2 * masks, 2)
        single_run = segmentation_metrics(maps, masks)
        monkeypatch.setattr(metrics, "_MIN_RUN_LENGTH", 1_000)
        monkeypatch.setattr(torch, "get_num_threads", lambda: num_threads)
        assert segmentation_metrics(maps, masks) == single_run
        assert single_run["auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=TOLERANCE)
        maps[2, 15, 20] = np.nan
        with pytest.raises(ValueError, match="`maps` contains NaN or infinite"):
            segmentation_metrics(maps, masks)


class TestHandComputedValues:
    def test_f1_max(self) -> None:
        # Thresholds 0.9 .. 0.5 give (TP, FP) = (1, 0), (1, 1), (2, 1), (3, 1), (3, 2) with 3
        # positives; F1 = 2 TP / (TP + FP + 3) peaks at 0.6: precision 3/4, recall 1, F1 6/7.
        scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
        labels = np.array([1, 0, 1, 1, 0])
        assert f1_max(scores, labels) == pytest.approx(6 / 7, abs=1e-15)

    def test_f1_max_with_a_tie_between_classes(self) -> None:
        # At 0.5 one positive enters with two negatives: F1 = 2 / (1 + 2 + 2) = 0.4; at 0.1
        # both positives and both negatives: F1 = 4 / (2 + 2 + 2) = 2/3.
        assert f1_max([0.9, 0.5, 0.5, 0.1], [0, 1, 0, 1]) == pytest.approx(2 / 3, abs=1e-15)

    def test_auroc_and_average_precision(self) -> None:
        # Positives 0.35 and 0.8 beat 1 and 2 of the 2 negatives: AUROC 3/4. AP: recall 1/2 at
        # precision 1 (0.8), recall 1 at precision 2/3 (0.35): 1/2 + 1/3.
        scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
        assert auroc(scores, labels) == 0.75
        assert average_precision(scores, labels) == pytest.approx(5 / 6, abs=1e-15)

    def test_constant_scores(self) -> None:
        labels = np.array([1, 0, 0, 1, 0])
        assert auroc(np.ones(5), labels) == 0.5
        assert average_precision(np.ones(5), labels) == pytest.approx(2 / 5, abs=1e-15)


class TestAupro:
    def test_perfect_separation_scores_one(self) -> None:
        masks = np.zeros((2, 6, 6), dtype=bool)
        masks[0, 1:3, 1:4] = True
        masks[1, 4:, 4:] = True
        maps = np.where(masks, 0.9, 0.1) + np.random.default_rng(0).random((2, 6, 6)) * 0.05
        assert aupro(maps, masks) == 1.0

    def test_overlap_is_averaged_per_region_of_eight_connected_pixels(self) -> None:
        # Region A: one pixel, scored 1. Region B: three pixels touching only at corners, so
        # one region under 8-connectivity (three under 4-connectivity); one of them scored 1.
        # Normal pixels score 0.5. From FPR 0 on, PRO = (1 + 1/3) / 2 = 2/3 (per-pixel recall
        # would be 1/2, 4-connected regions would give (1 + 1 + 0 + 0) / 4 = 1/2).
        masks = np.zeros((5, 5), dtype=bool)
        masks[0, 0] = True
        masks[2, 2] = masks[3, 3] = masks[4, 4] = True
        maps = np.full((5, 5), 0.5)
        maps[0, 0] = maps[2, 2] = 1.0
        maps[3, 3] = maps[4, 4] = 0.0
        assert aupro(maps, masks) == pytest.approx(2 / 3, abs=1e-15)
        # The last two pixels of B only enter below every normal pixel, at FPR 1.
        assert aupro(maps[None], masks[None], fpr_limit=1.0) == pytest.approx(2 / 3, abs=1e-15)

    def test_regions_do_not_connect_across_images(self) -> None:
        # The same pixel anomalous in two images is two regions: one fully found, one missed.
        masks = np.zeros((2, 3, 3), dtype=bool)
        masks[:, 1, 1] = True
        maps = np.full((2, 3, 3), 0.5)
        maps[0, 1, 1], maps[1, 1, 1] = 1.0, 0.0
        assert aupro(maps, masks) == pytest.approx(0.5, abs=1e-15)

    def test_integration_stops_at_the_limit_on_a_tie(self) -> None:
        # Ten normal pixels, one region of two. At 0.9 one region pixel: (FPR, PRO) = (0, 1/2).
        # At 0.5 the other region pixel ties with five normal pixels: the curve runs straight
        # to (1/2, 1), i.e. PRO = 1/2 + FPR. Area up to 0.3: 0.15 + 0.045, over 0.3: 0.65.
        maps = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]).reshape(3, 4)
        masks = np.zeros(12, dtype=bool)
        masks[:2] = True
        masks = masks.reshape(3, 4)
        assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.65, abs=1e-15)
        # Up to 0.5 exactly: 0.25 + 0.125, over 0.5.
        assert aupro(maps, masks, fpr_limit=0.5) == pytest.approx(0.75, abs=1e-15)

    @settings(max_examples=60, deadline=None)
    @given(
        seed=st.integers(0, 2**32 - 1),
        decimals=st.sampled_from([1, 2, None]),
        fpr_limit=st.sampled_from([0.3, 0.05, 1.0, 0.123]),
    )
    def test_agrees_with_the_mvtec_evaluation_code(self, seed: int, decimals: int | None, fpr_limit: float) -> None:
        rng = np.random.default_rng(seed)
        shape = (int(rng.integers(1, 4)), int(rng.integers(3, 16)), int(rng.integers(3, 16)))
        blurred = ndimage.uniform_filter(rng.random(shape), size=(1, 3, 3))
        masks = blurred > np.quantile(blurred, rng.uniform(0.6, 0.95))
        masks.flat[0], masks.flat[-1] = False, True
        maps = rng.random(shape) + masks * rng.uniform(0.0, 0.8)
        if decimals is not None:
            maps = np.round(maps, decimals)
        assert aupro(maps, masks, fpr_limit) == pytest.approx(mvtec_aupro(maps, masks, fpr_limit), abs=TOLERANCE)


class TestCombinedMetrics:
    def test_classification_metrics_equal_the_single_metrics(self) -> None:
        rng = np.random.default_rng(5)
        scores, labels = np.round(rng.random(3_000), 2), rng.random(3_000) < 0.3
        assert classification_metrics(scores, labels) == {
            "auroc": auroc(scores, labels),
            "average_precision": average_precision(scores, labels),
            "f1_max": f1_max(scores, labels),
        }

    def test_segmentation_metrics_equal_the_single_metrics(self) -> None:
        rng = np.random.default_rng(6)
        maps = rng.random((3, 20, 20)).astype(np.float32)
        masks = ndimage.uniform_filter(rng.random((3, 20, 20)), size=(1, 5, 5)) > 0.6
        assert segmentation_metrics(maps, masks, fpr_limit=0.2) == {
            "auroc": auroc(maps, masks),
            "average_precision": average_precision(maps, masks),
            "f1_max": f1_max(maps, masks),
            "aupro": aupro(maps, masks, fpr_limit=0.2),
        }


class TestInvalidInput:
    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_scores_name_the_argument(self, bad: float) -> None:
        scores = np.array([0.1, bad, 0.3])
        for metric in (auroc, average_precision, f1_max):
            with pytest.raises(ValueError, match="`scores` contains NaN or infinite"):
                metric(scores, [0, 1, 1])

    def test_non_finite_map_names_the_argument(self) -> None:
        maps = np.zeros((2, 3, 3), dtype=np.float32)
        maps[1, 2, 0] = np.nan
        masks = np.eye(3, dtype=bool)[None].repeat(2, axis=0)
        with pytest.raises(ValueError, match="`maps` contains NaN or infinite"):
            aupro(maps, masks)
        with pytest.raises(ValueError, match="`maps` contains NaN or infinite"):
            segmentation_metrics(maps, masks)

    def test_mismatched_shapes(self) -> None:
        with pytest.raises(ValueError, match=r"`scores` has shape \(3,\) but `labels` has shape \(4,\)"):
            auroc([0.1, 0.2, 0.3], [0, 1, 0, 1])
        with pytest.raises(ValueError, match="`maps` has shape"):
            aupro(np.zeros((2, 4, 4)), np.ones((2, 4, 5)))

    @pytest.mark.parametrize("labels", [[0, 2, 1], [0.0, 0.5, 1.0], [-1, 0, 1], [0.0, np.nan, 1.0]])
    def test_labels_other_than_zero_and_one(self, labels: list[float]) -> None:
        with pytest.raises(ValueError, match="`labels` must hold only 0 and 1"):
            auroc([0.1, 0.2, 0.3], labels)

    def test_a_single_class_is_refused_and_detectable(self) -> None:
        scores = [0.1, 0.2, 0.3]
        assert not has_both_classes([1, 1, 1])
        assert not has_both_classes(np.zeros(3))
        with pytest.raises(ValueError, match="AUROC is undefined: `labels` has no negative"):
            auroc(scores, [1, 1, 1])
        with pytest.raises(ValueError, match="AUROC is undefined: `labels` has no positive"):
            classification_metrics(scores, [0, 0, 0])
        with pytest.raises(ValueError, match="average precision is undefined: `labels` has no positive"):
            average_precision(scores, [0, 0, 0])
        with pytest.raises(ValueError, match="AUPRO is undefined: `masks` has no positive"):
            aupro(np.zeros((3, 3)), np.zeros((3, 3)))

    def test_all_positive_labels_still_have_precision(self) -> None:
        # Precision is 1 at every threshold, as scikit-learn says.
        assert average_precision([0.1, 0.2], [1, 1]) == 1.0
        assert f1_max([0.1, 0.2], [1, 1]) == 1.0

    def test_bad_fpr_limit_and_map_rank(self) -> None:
        masks = np.eye(4, dtype=bool)
        with pytest.raises(ValueError, match=r"`fpr_limit` must lie in \(0, 1\]"):
            aupro(np.zeros((4, 4)), masks, fpr_limit=0.0)
        with pytest.raises(ValueError, match=r"`maps` must have shape \(N, H, W\) or \(H, W\)"):
            aupro(np.zeros(16), masks.ravel())

    def test_empty_scores(self) -> None:
        with pytest.raises(ValueError, match="`scores` is empty"):
            auroc(np.array([]), np.array([]))


def make_class(seed: int, num_images: int = 7, size: int = 12) -> dict[str, np.ndarray]:
    """A small synthetic class: blob masks, maps brighter on them, scores, labels."""
    rng = np.random.default_rng(seed)
    masks = ndimage.uniform_filter(rng.random((num_images, size, size)), size=(1, 5, 5)) > 0.58
    masks[: num_images // 3] = False
    labels = masks.any(axis=(1, 2))
    maps = (rng.random((num_images, size, size)) + 0.7 * masks).astype(np.float32) * 4.0 + 1.0
    scores = np.clip(0.3 * labels + rng.random(num_images) * 0.8, 0.0, 1.0)
    return {"scores": scores, "labels": labels, "maps": maps, "masks": masks}


def accumulate(data: dict[str, np.ndarray], batch_size: int, **kwargs) -> ClassMetricAccumulator:
    accumulator = ClassMetricAccumulator(**kwargs)
    for start in range(0, len(data["labels"]), batch_size):
        batch = slice(start, start + batch_size)
        accumulator.update(
            torch.from_numpy(data["scores"][batch]),
            torch.from_numpy(data["labels"][batch]),
            torch.from_numpy(data["maps"][batch]),
            torch.from_numpy(data["masks"][batch]),
        )
    return accumulator


class TestClassMetricAccumulator:
    @pytest.mark.parametrize("batch_size", [1, 3, 7])
    @pytest.mark.parametrize("expected_num_images", [None, 2, 7])
    def test_batches_equal_the_whole_class_at_once(self, batch_size: int, expected_num_images: int | None) -> None:
        data = make_class(seed=batch_size)
        results = accumulate(data, batch_size, expected_num_images=expected_num_images).compute()
        image = classification_metrics(data["scores"], data["labels"])
        pixel = segmentation_metrics(data["maps"], data["masks"])
        assert results == {
            "image_auroc": image["auroc"],
            "image_ap": image["average_precision"],
            "image_f1_max": image["f1_max"],
            "pixel_auroc": pixel["auroc"],
            "pixel_ap": pixel["average_precision"],
            "pixel_aupro": pixel["aupro"],
            "pixel_f1_max": pixel["f1_max"],
        }
        assert list(results) == list(METRIC_NAMES)

    def test_protocol_normalises_over_the_class_and_fuses_with_normalised_maxima(self) -> None:
        # Class min 6, max 10: normalised maps A [0, 1], B [0, 0.5], C [0.25, 0.25], maxima
        # 1, 0.5, 0.25. Fused 0.5 * max + 0.5 * s with s = (0, 1, 0.2): A 0.5, B 0.75,
        # C 0.225. Only A is anomalous: it beats C, loses to B -> AUROC 1/2, AP 1/2, F1 2/3.
        # (Fusing the raw maxima 10, 8, 7 would rank A first: AUROC 1.)
        maps = np.array([[[6.0, 10.0]], [[6.0, 8.0]], [[7.0, 7.0]]], dtype=np.float32)
        scores, labels = np.array([0.0, 1.0, 0.2]), np.array([1, 0, 0])
        masks = np.array([[[0, 1]], [[0, 0]], [[0, 0]]])
        np.testing.assert_array_equal(
            normalize_class_maps(torch.from_numpy(maps)).numpy(),
            np.array([[[0.0, 1.0]], [[0.0, 0.5]], [[0.25, 0.25]]], dtype=np.float32),
        )
        np.testing.assert_allclose(
            fuse_image_score(torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64), torch.from_numpy(scores), INDUSTRIAL).numpy(),
            [0.5, 0.75, 0.225],
            atol=1e-15,
        )
        accumulator = ClassMetricAccumulator()
        accumulator.update(scores[:2], labels[:2], maps[:2], masks[:2])
        accumulator.update(scores[2:], labels[2:], maps[2:], masks[2:])
        protocol = accumulator.compute(normalize_maps=True, score_fusion_weight=INDUSTRIAL)
        assert protocol["image_auroc"] == 0.5
        assert protocol["image_ap"] == 0.5
        assert protocol["image_f1_max"] == pytest.approx(2 / 3, abs=1e-15)
        assert protocol["pixel_auroc"] == 1.0
        assert accumulator.compute(score_fusion_weight=0.5)["image_auroc"] == 1.0
        assert accumulator.compute()["image_auroc"] == 0.0
        medical = accumulator.compute(normalize_maps=True, score_fusion_weight=DEFAULT_SCORE_FUSION_WEIGHTS["medical"])
        assert medical["image_auroc"] == 1.0

    def test_protocol_equals_normalising_and_fusing_by_hand(self) -> None:
        data = make_class(seed=21, num_images=9)
        normalised = (data["maps"] - data["maps"].min()) / (data["maps"].max() - data["maps"].min())
        fused = 0.5 * normalised.max(axis=(1, 2)).astype(np.float64) + 0.5 * data["scores"]
        results = accumulate(data, batch_size=4).compute(normalize_maps=True, score_fusion_weight=0.5)
        image = classification_metrics(fused, data["labels"])
        pixel = segmentation_metrics(normalised, data["masks"])
        assert (results["image_auroc"], results["image_ap"]) == (image["auroc"], image["average_precision"])
        assert (results["pixel_auroc"], results["pixel_aupro"]) == (pixel["auroc"], pixel["aupro"])

    def test_a_class_with_one_image_label_skips_image_metrics(self) -> None:
        data = make_class(seed=3)
        anomalous = {key: value[data["labels"]] for key, value in data.items()}
        results = accumulate(anomalous, batch_size=2).compute(normalize_maps=True, score_fusion_weight=0.5)
        assert results["image_auroc"] is None and results["image_ap"] is None and results["image_f1_max"] is None
        assert results["pixel_auroc"] == segmentation_metrics(anomalous["maps"], anomalous["masks"])["auroc"]

    def test_pixel_metrics_are_skipped_without_masks_or_anomalous_pixels(self) -> None:
        data = make_class(seed=4)
        without_masks = ClassMetricAccumulator()
        without_masks.update(data["scores"], data["labels"], data["maps"])
        results = without_masks.compute(normalize_maps=True, score_fusion_weight=1.0)
        assert [results[name] for name in METRIC_NAMES if name.startswith("pixel")] == [None] * 4
        assert results["image_auroc"] is not None
        clean_masks = ClassMetricAccumulator()
        clean_masks.update(data["scores"], data["labels"], data["maps"], np.zeros_like(data["masks"]))
        assert clean_masks.compute()["pixel_auroc"] is None

    def test_scores_alone(self) -> None:
        accumulator = ClassMetricAccumulator()
        accumulator.update([0.2, 0.9], [0, 1])
        accumulator.update([0.4], [1])
        assert accumulator.num_images == 3
        assert accumulator.compute()["image_auroc"] == 1.0
        with pytest.raises(ValueError, match="need `pixel_maps`"):
            accumulator.compute(normalize_maps=True)

    def test_maps_with_a_channel_axis(self) -> None:
        data = make_class(seed=8)
        accumulator = ClassMetricAccumulator()
        accumulator.update(data["scores"], data["labels"], data["maps"][:, None], data["masks"][:, None])
        assert accumulator.compute()["pixel_aupro"] == aupro(data["maps"], data["masks"])

    def test_constant_maps_normalise_to_zeros(self) -> None:
        maps = torch.full((2, 3, 3), 4.0)
        assert torch.equal(normalize_class_maps(maps), torch.zeros(2, 3, 3))

    def test_the_released_protocol_normalises_only_maps_that_leave_the_unit_range(self) -> None:
        inside = torch.tensor([[[0.2, 0.6], [0.4, 0.3]]])
        assert torch.equal(normalize_class_maps(inside, only_outside_unit_range=True), inside)
        torch.testing.assert_close(normalize_class_maps(inside), (inside - 0.2) / 0.4)
        outside = inside * 3
        torch.testing.assert_close(normalize_class_maps(outside, only_outside_unit_range=True), (outside - 0.6) / 1.2)

    def test_non_finite_map_is_refused_at_update(self) -> None:
        data = make_class(seed=9)
        data["maps"][2, 5, 5] = np.inf
        with pytest.raises(ValueError, match="`pixel_maps` contains NaN or infinite"):
            accumulate(data, batch_size=3)

    def test_inconsistent_batches_are_refused_and_leave_the_class_unchanged(self) -> None:
        data = make_class(seed=10)
        accumulator = accumulate(data, batch_size=7)
        with pytest.raises(ValueError, match="`pixel_maps` were given in earlier batches"):
            accumulator.update([0.5], [0])
        with pytest.raises(ValueError, match="earlier batches of this class had"):
            accumulator.update([0.5], [0], np.zeros((1, 5, 5)), np.zeros((1, 5, 5)))
        with pytest.raises(ValueError, match="`pixel_masks` have shape"):
            accumulator.update([0.5], [0], np.zeros((1, 12, 12)), np.zeros((1, 12, 11)))
        with pytest.raises(ValueError, match="got 2 `image_scores` but 1 `image_labels`"):
            accumulator.update([0.5, 0.1], [0])
        assert accumulator.num_images == 7
        assert accumulator.compute() == accumulate(data, batch_size=7).compute()

    def test_empty_class(self) -> None:
        with pytest.raises(ValueError, match="no images were added"):
            ClassMetricAccumulator().compute()
