"""Segmentation and classification losses of MoECLIP (METHOD.md, "Losses and training"; Eq. 15, B.3, B.4).

Probability maps have two channels, ``[normal, anomalous]``, from the softmax of Eq. 12. Masks are binary with
1 on anomalous pixels. The ETF and balance losses of the experts live with the MoE-LoRA tuner.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["classification_loss", "dice_loss", "focal_loss", "segmentation_loss"]


def _mask_as_maps(mask: Tensor, batch_size: int, height: int, width: int) -> Tensor:
    """A (B, 1, H, W) or (B, H, W) mask as a (B, H, W) tensor."""
    if mask.shape == (batch_size, 1, height, width):
        return mask.squeeze(1)
    if mask.shape == (batch_size, height, width):
        return mask
    raise ValueError(
        f"`mask` must have shape ({batch_size}, 1, {height}, {width}) or ({batch_size}, {height}, {width}) to match "
        f"the probabilities, got {tuple(mask.shape)}."
    )


def _focal_terms(probs: Tensor, mask: Tensor, gamma: float, smooth: float) -> Tensor:
    """Per-pixel focal loss of (N, 2, H, W) probabilities against a binary (N, H, W) mask."""
    mask = mask.to(probs.dtype)
    # Clamp each one-hot channel itself: 1 - clamp(mask) would round 1 - (1 - smooth) in low precision.
    normal_target = (1.0 - mask).clamp(smooth, 1.0 - smooth)
    anomaly_target = mask.clamp(smooth, 1.0 - smooth)
    normal, anomalous = probs.unbind(dim=1)
    pt = normal_target * normal + anomaly_target * anomalous + smooth
    return -((1.0 - pt) ** gamma) * pt.log()


def _dice_per_image(pred: Tensor, target: Tensor, smooth: float) -> Tensor:
    """Per-image Dice loss of two tensors with the same number of elements per image; shape (N,)."""
    pred = pred.reshape(pred.shape[0], -1)
    target = target.reshape(target.shape[0], -1).to(pred.dtype)
    overlap = (2.0 * (pred * target).sum(dim=1) + smooth) / (pred.sum(dim=1) + target.sum(dim=1) + smooth)
    return 1.0 - overlap


def focal_loss(probs: Tensor, mask: Tensor, gamma: float = 2.0, smooth: float = 1e-5) -> Tensor:
    """Focal loss on 2-channel probabilities (METHOD.md, "Losses and training"; Eq. B.3).

    The one-hot target of the mask is clamped to ``[smooth, 1 - smooth]``, ``pt = sum_c onehot_c * p_c + smooth``,
    and the loss is the mean over all pixels of ``-(1 - pt)^gamma * log(pt)``, as in the released code.

    Args:
        probs (`torch.Tensor` of shape `(batch_size, 2, H, W)`):
            Softmax probabilities ``[normal, anomalous]``.
        mask (`torch.Tensor` of shape `(batch_size, 1, H, W)` or `(batch_size, H, W)`):
            Binary ground truth, 1 on anomalous pixels.
        gamma (`float`, *optional*, defaults to 2.0):
            Focusing exponent.
        smooth (`float`, *optional*, defaults to 1e-5):
            Clamp of the one-hot target and offset of ``pt``.

    Returns:
        `torch.Tensor`: the scalar loss.
    """
    if probs.ndim != 4 or probs.shape[1] != 2:
        raise ValueError(f"`probs` must have shape (batch_size, 2, H, W), got {tuple(probs.shape)}.")
    batch_size, _, height, width = probs.shape
    mask = _mask_as_maps(mask, batch_size, height, width)
    return _focal_terms(probs, mask, gamma, smooth).mean()


def dice_loss(pred: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Dice loss with smoothing (METHOD.md, "Losses and training"; Eq. B.4).

    Per image ``1 - (2 sum(p q) + smooth) / (sum(p) + sum(q) + smooth)`` over all its elements, averaged over
    the batch.

    Args:
        pred (`torch.Tensor` of shape `(batch_size, ...)`):
            Predicted probabilities of one channel, e.g. `(batch_size, H, W)`.
        target (`torch.Tensor` of shape `(batch_size, ...)`):
            Target of the same number of elements per image, e.g. a `(batch_size, 1, H, W)` mask.
        smooth (`float`, *optional*, defaults to 1.0):
            Smoothing added to numerator and denominator.

    Returns:
        `torch.Tensor`: the scalar loss.
    """
    if pred.ndim < 1 or target.ndim < 1 or pred.shape[0] != target.shape[0] or pred.numel() != target.numel():
        raise ValueError(
            "`pred` and `target` must have the same batch size and number of elements per image, got shapes "
            f"{tuple(pred.shape)} and {tuple(target.shape)}."
        )
    return _dice_per_image(pred, target, smooth).mean()


def segmentation_loss(probs: Tensor, mask: Tensor) -> Tensor:
    """The segmentation loss of Eq. 15, summed over the layer x scale maps.

    For each of the ``M`` maps: focal loss + Dice(anomalous channel, mask) + Dice(normal channel, 1 - mask),
    each averaged over its batch; then the sum over the maps. The maps are folded into the batch dim and the
    per-pixel and per-image terms are averaged per map before the sum.

    Args:
        probs (`torch.Tensor` of shape `(batch_size, M, 2, H, W)`):
            Softmax probabilities ``[normal, anomalous]`` of the ``M = layers x scales`` maps
            (`training_probabilities`).
        mask (`torch.Tensor` of shape `(batch_size, 1, H, W)` or `(batch_size, H, W)`):
            Binary ground truth, 1 on anomalous pixels.

    Returns:
        `torch.Tensor`: the scalar loss.
    """
    if probs.ndim != 5 or probs.shape[2] != 2:
        raise ValueError(f"`probs` must have shape (batch_size, M, 2, H, W), got {tuple(probs.shape)}.")
    batch_size, num_maps, _, height, width = probs.shape
    mask = _mask_as_maps(mask, batch_size, height, width).to(probs.dtype)
    flat_probs = probs.reshape(batch_size * num_maps, 2, height, width)
    flat_mask = mask.unsqueeze(1).expand(batch_size, num_maps, height, width).reshape(-1, height, width)

    focal = _focal_terms(flat_probs, flat_mask, gamma=2.0, smooth=1e-5).reshape(batch_size, num_maps, -1)
    normal, anomalous = flat_probs.unbind(dim=1)
    dice = _dice_per_image(anomalous, flat_mask, smooth=1.0) + _dice_per_image(normal, 1.0 - flat_mask, smooth=1.0)
    per_map = focal.mean(dim=(0, 2)) + dice.reshape(batch_size, num_maps).mean(dim=0)
    return per_map.sum()


def classification_loss(image_cosines: Tensor, labels: Tensor) -> Tensor:
    """Image classification loss: cross-entropy over the cosines ``[cos_N, cos_A]`` (Eq. 15, released form).

    The cosines enter the softmax unscaled, as in the released code (the paper calls this loss BCE).

    Args:
        image_cosines (`torch.Tensor` of shape `(batch_size, 2)`):
            Cosines of the image embedding with ``[T_N, T_A]``.
        labels (`torch.Tensor` of shape `(batch_size,)`):
            Image labels, 0 normal and 1 anomalous.

    Returns:
        `torch.Tensor`: the scalar loss.
    """
    if image_cosines.ndim != 2 or image_cosines.shape[1] != 2:
        raise ValueError(f"`image_cosines` must have shape (batch_size, 2), got {tuple(image_cosines.shape)}.")
    if labels.shape != image_cosines.shape[:1]:
        raise ValueError(
            f"`labels` must have shape ({image_cosines.shape[0]},) to match `image_cosines`, got {tuple(labels.shape)}."
        )
    return F.cross_entropy(image_cosines, labels.long())
