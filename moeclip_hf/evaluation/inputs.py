"""Checking what the metrics are given: scores, labels and maps as CPU tensors, with errors naming the argument.

Shared by the metric functions (`moeclip_hf.evaluation.metrics`) and the per-class accumulator, which checks
each batch as it arrives so that a NaN is blamed on the batch that brought it.
"""

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]
"""Anything `torch.as_tensor` takes: tensors, numpy arrays, (nested) lists of numbers."""


def validated(
    scores: ArrayLike, labels: ArrayLike, scores_name: str, labels_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and boolean labels as CPU tensors of one shape."""
    scores_tensor = as_scores(scores, scores_name)
    labels_tensor = as_labels(labels, labels_name)
    if scores_tensor.shape != labels_tensor.shape:
        raise ValueError(
            f"`{scores_name}` has shape {tuple(scores_tensor.shape)} but `{labels_name}` has shape "
            f"{tuple(labels_tensor.shape)}; they must match element for element"
        )
    return scores_tensor, labels_tensor


def validated_maps(maps: ArrayLike, masks: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps and masks as for `validated`, also checked to be one image or a stack."""
    maps_tensor, masks_tensor = validated(maps, masks, "maps", "masks")
    if maps_tensor.dim() not in (2, 3):
        raise ValueError(f"`maps` must have shape (N, H, W) or (H, W), got {tuple(maps_tensor.shape)}")
    require_both_classes(masks_tensor, "masks", "AUPRO")
    return maps_tensor, masks_tensor


def as_scores(values: ArrayLike, name: str) -> torch.Tensor:
    """A non-empty CPU tensor of real scores; finiteness is checked where they are sorted."""
    tensor = torch.as_tensor(values).detach().cpu()
    if tensor.is_complex():
        raise TypeError(f"`{name}` must hold real scores, got dtype {tensor.dtype}")
    if tensor.numel() == 0:
        raise ValueError(f"`{name}` is empty")
    return tensor


def check_finite(scores: torch.Tensor, name: str) -> None:
    """Refuse NaN and infinities early, where no sort will find them for free."""
    if scores.is_floating_point() and not bool(torch.isfinite(scores).all()):
        raise ValueError(f"`{name}` contains NaN or infinite values; scores must be finite")


def as_labels(values: ArrayLike, name: str) -> torch.Tensor:
    """A boolean CPU tensor, from labels that must all be 0 or 1."""
    tensor = torch.as_tensor(values).detach().cpu()
    if tensor.dtype == torch.bool:
        return tensor
    if not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ValueError(f"`{name}` must hold only 0 and 1 (or booleans)")
    return tensor != 0


def require_positive(labels: torch.Tensor, name: str, metric: str) -> None:
    if not bool(labels.any()):
        raise ValueError(f"{metric} is undefined: `{name}` has no positive (1) entry")


def require_both_classes(labels: torch.Tensor, name: str, metric: str) -> None:
    require_positive(labels, name, metric)
    if bool(labels.all()):
        raise ValueError(
            f"{metric} is undefined: `{name}` has no negative (0) entry. Check `has_both_classes` first, "
            "or let `ClassMetricAccumulator` skip the metric for such a class"
        )


def check_fpr_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"`fpr_limit` must lie in (0, 1], got {fpr_limit}")


__all__ = [
    "ArrayLike",
    "as_labels",
    "as_scores",
    "check_finite",
    "check_fpr_limit",
    "require_both_classes",
    "require_positive",
    "validated",
    "validated_maps",
]
