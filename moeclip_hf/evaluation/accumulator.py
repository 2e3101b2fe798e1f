"""One benchmark class, batch by batch: storage, the MoECLIP protocol and its metrics.

The metrics of a class need every pixel of the class at once (a ranking is not additive
over batches), and the MoECLIP protocol needs the class's maps together anyway: the
summed test maps are min-max normalised over all images of the class, and the image
score is fused with the normalised map maximum. `ClassMetricAccumulator` keeps what
that takes, compactly, and `compute` applies the protocol and the metrics of
`moeclip_hf.evaluation.metrics`.
"""

import torch

from ..benchmarks import METRIC_NAMES
from ..modeling.maps import fuse_image_score
from .inputs import ArrayLike, as_labels, as_scores, check_finite
from .metrics import classification_metrics, has_both_classes, segmentation_metrics

STORED_DTYPES = {
    "image_scores": torch.float64,
    "image_labels": torch.bool,
    "pixel_maps": torch.float32,
    "pixel_masks": torch.bool,
}
"""How `ClassMetricAccumulator` stores what `update` is given, by argument name."""


def normalize_class_maps(maps: torch.Tensor, only_outside_unit_range: bool = False) -> torch.Tensor:
    """Min-max normalise the maps of one class together: (m - min) / (max - min).

    `min` and `max` run over every pixel of every map of the class, as in the authors'
    benchmark protocol. These are statistics of the test set itself, so the result
    serves benchmark numbers only. Maps of a single value, whose range is zero, become
    zeros. With `only_outside_unit_range` (the released code's protocol), maps that all lie
    in [0, 1] are returned as they are. Returns a new tensor of the maps' dtype.
    """
    low, high = torch.aminmax(maps)
    if only_outside_unit_range and bool(low >= 0) and bool(high <= 1):
        return maps.clone()
    if bool(high == low):
        return torch.zeros_like(maps)
    return torch.sub(maps, low).div_(high - low)


class _GrowingBuffer:
    """Rows appended along the first axis of one tensor that doubles its capacity when full.

    A class's maps then sit in memory once, in their final layout: appending copies each
    row once (amortised) and `values` is a view, where a list of batches would need a
    second, concatenated copy at the end. With the right `capacity` nothing is copied.
    """

    def __init__(self, dtype: torch.dtype, capacity: int | None) -> None:
        self._dtype = dtype
        self._capacity = capacity
        self._data: torch.Tensor | None = None
        self._size = 0

    def append(self, rows: torch.Tensor, name: str) -> None:
        """Copy `rows` (converted to the buffer's dtype) after the rows already held."""
        if self._data is None:
            capacity = max(self._capacity or 0, rows.shape[0])
            self._data = torch.empty((capacity, *rows.shape[1:]), dtype=self._dtype)
        elif rows.shape[1:] != self._data.shape[1:]:
            raise ValueError(
                f"`{name}` rows have shape {tuple(rows.shape[1:])}, but earlier batches of this class had "
                f"{tuple(self._data.shape[1:])}; resize every map and mask of a class to one size"
            )
        end = self._size + rows.shape[0]
        if end > self._data.shape[0]:
            grown = torch.empty((max(end, 2 * self._data.shape[0]), *self._data.shape[1:]), dtype=self._dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = rows
        self._size = end

    @property
    def values(self) -> torch.Tensor | None:
        """The rows appended so far, or None before the first append."""
        return None if self._data is None else self._data[: self._size]


class ClassMetricAccumulator:
    """Collects one class of a benchmark batch by batch, then computes its metrics.

    Image scores are kept in float64 and labels, masks as bool; maps are kept in float32,
    the model's precision, in one (N, H, W) tensor, so a class of 30 M pixels holds about
    150 MB. Metrics are computed on exactly these stored values.

    Maps are optional (then image scores are used as given) and so are masks (then pixel
    metrics are skipped, e.g. Head CT, which has image labels only); either must come with
    every batch or with none.

    Args:
        expected_num_images: number of images the class will have, if known: the buffers
            are then allocated once at that size instead of grown by doubling.

    Example:
        ```python
        accumulator = ClassMetricAccumulator(expected_num_images=len(class_dataset))
        for batch in loader:
            outputs = model(**batch["inputs"])
            accumulator.update(outputs.anomaly_score, batch["label"], outputs.anomaly_map, batch["mask"])
        results = accumulator.compute(normalize_maps=True, score_fusion_weight=0.5)  # industrial
        ```
    """

    def __init__(self, expected_num_images: int | None = None) -> None:
        self._image_scores = _GrowingBuffer(STORED_DTYPES["image_scores"], expected_num_images)
        self._image_labels = _GrowingBuffer(STORED_DTYPES["image_labels"], expected_num_images)
        self._pixel_maps = _GrowingBuffer(STORED_DTYPES["pixel_maps"], expected_num_images)
        self._pixel_masks = _GrowingBuffer(STORED_DTYPES["pixel_masks"], expected_num_images)

    @property
    def num_images(self) -> int:
        """Number of images added so far."""
        labels = self._image_labels.values
        return 0 if labels is None else labels.shape[0]

    def update(
        self,
        image_scores: ArrayLike,
        image_labels: ArrayLike,
        pixel_maps: ArrayLike | None = None,
        pixel_masks: ArrayLike | None = None,
    ) -> None:
        """Add one batch of B images.

        Args:
            image_scores: shape (B,), finite.
            image_labels: shape (B,), 0/1 or bool.
            pixel_maps: shape (B, H, W) or (B, 1, H, W), finite; H and W fixed per class.
            pixel_masks: same shape as `pixel_maps`, 0/1 or bool; needs `pixel_maps`.

        Raises:
            ValueError: on non-finite scores or maps, labels or masks other than 0/1,
                sizes that disagree, or maps or masks given in some batches only.
        """
        scores = _finite_scores(image_scores, "image_scores").reshape(-1)
        labels = as_labels(image_labels, "image_labels").reshape(-1)
        if scores.shape != labels.shape:
            raise ValueError(f"got {scores.numel()} `image_scores` but {labels.numel()} `image_labels`")
        if pixel_masks is not None and pixel_maps is None:
            raise ValueError("`pixel_masks` were given without `pixel_maps`")
        self._check_same_presence(pixel_maps, self._pixel_maps, "pixel_maps")
        self._check_same_presence(pixel_masks, self._pixel_masks, "pixel_masks")
        maps = masks = None
        if pixel_maps is not None:
            maps = _stack_of_maps(_finite_scores(pixel_maps, "pixel_maps"), "pixel_maps", scores.numel())
        if pixel_masks is not None:
            masks = _stack_of_maps(as_labels(pixel_masks, "pixel_masks"), "pixel_masks", scores.numel())
            if masks.shape != maps.shape:
                raise ValueError(f"`pixel_masks` have shape {tuple(masks.shape)} but `pixel_maps` {tuple(maps.shape)}")
        # Maps first: they are the only rows whose size can still disagree with earlier
        # batches, so a refused batch leaves every buffer as it was.
        if maps is not None:
            self._pixel_maps.append(maps, "pixel_maps")
        if masks is not None:
            self._pixel_masks.append(masks, "pixel_masks")
        self._image_scores.append(scores, "image_scores")
        self._image_labels.append(labels, "image_labels")

    def compute(
        self,
        normalize_maps: bool = False,
        score_fusion_weight: float = 0.0,
        fpr_limit: float = 0.3,
        normalize_only_outside_unit_range: bool = False,
    ) -> dict[str, float | None]:
        """The class's metrics, after the MoECLIP protocol when asked for.

        With `m` the stored maps and `s` the image scores:

        1. `normalize_maps=True`: m <- (m - min) / (max - min), over all pixels of all
           images of the class (`normalize_class_maps`); with `normalize_only_outside_unit_range`
           only when m leaves [0, 1] (the released protocol). The released protocol treats the
           image scores the same way, which cannot change a metric (AUROC, AP and F1-max are
           invariant to an increasing affine map of the scores), so it is not repeated here.
        2. `score_fusion_weight=w`: s <- w * max_pixels(m) + (1 - w) * s, with the maps of
           step 1 (`moeclip_hf.modeling.maps.fuse_image_score`, in float64). The paper's benchmark
           uses normalisation with the domain's `MoECLIPConfig.score_fusion_weights` (w = 0.5
           industrial, 1 medical).
        3. Image metrics on (s, labels), pixel metrics on (m, masks).

        Args:
            normalize_maps: apply step 1.
            normalize_only_outside_unit_range: in step 1, leave maps within [0, 1] as they are.
            score_fusion_weight: w of step 2, in [0, 1]; 0 leaves the scores as added.
            fpr_limit: integration limit of the pixel AUPRO.

        Returns:
            Every key of `METRIC_NAMES`. Image metrics are None when the class has a
            single image label (AUROC is undefined there); pixel metrics are None
            without masks or when the masks hold a single label.

        Raises:
            ValueError: if no image was added, or if steps 1 or 2 are asked for without maps.
        """
        labels = self._image_labels.values
        if labels is None:
            raise ValueError("no images were added to this class")
        maps = self._pixel_maps.values
        if maps is None and (normalize_maps or score_fusion_weight != 0.0):
            raise ValueError("map normalisation and score fusion need `pixel_maps` in `update`")
        if normalize_maps:
            maps = normalize_class_maps(maps, normalize_only_outside_unit_range)
        scores = self._image_scores.values
        if score_fusion_weight != 0.0:
            scores = fuse_image_score(maps.amax(dim=(1, 2)).to(torch.float64), scores, score_fusion_weight)
        results: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
        if has_both_classes(labels):
            image = classification_metrics(scores, labels)
            results.update(
                image_auroc=image["auroc"], image_ap=image["average_precision"], image_f1_max=image["f1_max"]
            )
        masks = self._pixel_masks.values
        if masks is not None and has_both_classes(masks):
            pixel = segmentation_metrics(maps, masks, fpr_limit)
            results.update(
                pixel_auroc=pixel["auroc"],
                pixel_ap=pixel["average_precision"],
                pixel_aupro=pixel["aupro"],
                pixel_f1_max=pixel["f1_max"],
            )
        return results

    def stored(self) -> dict[str, torch.Tensor | None]:
        """What was added so far, exactly as stored (`STORED_DTYPES`), keyed as `update` names it.

        `image_scores` and `image_labels` have shape (N,), `pixel_maps` and `pixel_masks` (N, H, W) or are
        None when not given; all None before the first `update`. The tensors are views of the buffers, so
        `other.update(**accumulator.stored())` adds the same values to another accumulator without a copy
        in between (how the shares of several processes are joined, `evaluation.distributed`).
        """
        return {
            "image_scores": self._image_scores.values,
            "image_labels": self._image_labels.values,
            "pixel_maps": self._pixel_maps.values,
            "pixel_masks": self._pixel_masks.values,
        }

    def _check_same_presence(self, batch: ArrayLike | None, buffer: _GrowingBuffer, name: str) -> None:
        """Refuse `name` in some batches only: the class's pixels must line up with its images."""
        if self.num_images and (batch is None) != (buffer.values is None):
            state = "were" if buffer.values is not None else "were not"
            raise ValueError(
                f"`{name}` {state} given in earlier batches of this class; give them in every batch or none"
            )


def _finite_scores(values: ArrayLike, name: str) -> torch.Tensor:
    """Scores checked at once, so that a NaN is blamed on the batch that brought it."""
    scores = as_scores(values, name)
    check_finite(scores, name)
    return scores


def _stack_of_maps(maps: torch.Tensor, name: str, batch_size: int) -> torch.Tensor:
    """(B, H, W) view of maps given as (B, H, W) or (B, 1, H, W)."""
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps.squeeze(1)
    if maps.dim() != 3 or maps.shape[0] != batch_size:
        raise ValueError(
            f"`{name}` must have shape ({batch_size}, H, W) or ({batch_size}, 1, H, W), got {tuple(maps.shape)}"
        )
    return maps


__all__ = ["ClassMetricAccumulator", "normalize_class_maps"]
