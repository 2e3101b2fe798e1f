"""Patch logits, anomaly maps and image scores of MoECLIP (METHOD.md, "Outputs").

Patch logits have shape ``(..., 2, g, g)``: channel 0 is the normal logit ``z_N``, channel 1 the anomalous logit
``z_A``, both ``100 * cos`` between a patch embedding and the text embeddings ``[T_N, T_A]``.

- Training maps (Eq. 12): bilinear upsampling (``align_corners=True``) to the image size, then a softmax over
  the two channels.
- Test maps of the benchmark protocol: per (layer, scale) ``a = (z_A + 1 - z_N) / 2``, a Gaussian blur on the
  ``g x g`` grid (reflect padding), bilinear upsampling, and the *sum* over all layers x scales.
- Single-image maps: the anomaly probability of Eq. 12, blurred the same way and *averaged* over the maps, so
  each map lies in [0, 1] without any class statistics.
- Image scores (Eq. 14): ``(cos_A + 1) / 2``, fused with the maximum of the pixel map.
"""

from __future__ import annotations

from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "anomaly_logit_map",
    "fuse_image_score",
    "gaussian_blur",
    "image_anomaly_score",
    "patch_logits",
    "probability_anomaly_map",
    "protocol_anomaly_map",
    "training_probabilities",
]

def _image_size_pair(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, Integral) else image_size
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 1 for s in size)
    ):
        raise ValueError(f"`image_size` must be a positive int or a (height, width) pair of them, got {image_size!r}.")
    return int(size[0]), int(size[1])


def _check_logits(logits: Tensor, ndim: int | None = None) -> None:
    if ndim is not None and logits.ndim != ndim:
        raise ValueError(
            f"`logits` must have shape (batch_size, num_maps, 2, g, g), got shape {tuple(logits.shape)}."
        )
    if logits.ndim < 3 or logits.shape[-3] != 2:
        raise ValueError(
            "`logits` must have shape (..., 2, g, g) with channels [normal, anomalous], "
            f"got shape {tuple(logits.shape)}."
        )


def _upsample(grids: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling (``align_corners=True``) of the last two dims of a (..., C, g, g) tensor."""
    flat = grids.reshape(-1, *grids.shape[-3:])
    upsampled = F.interpolate(flat, size=size, mode="bilinear", align_corners=True)
    return upsampled.reshape(*grids.shape[:-2], *size)


def patch_logits(patch_embeddings: Tensor, text_embeddings: Tensor, logit_scale: float = 100.0) -> Tensor:
    """Scaled cosine similarity of every patch with the text embeddings ``[T_N, T_A]`` (METHOD.md, "Outputs").

    Args:
        patch_embeddings (`torch.Tensor` of shape `(batch_size, ..., e, g, g)`):
            Projected patch features on their grid; they are L2-normalised over ``e`` here, so callers pass the
            raw projection output. Any dims between the batch and ``e`` (e.g. layers and scales) are kept.
        text_embeddings (`torch.Tensor` of shape `(batch_size, 2, e)`):
            Per image, the L2-normalised ``[T_N, T_A]``.
        logit_scale (`float`, *optional*, defaults to 100.0):
            Factor applied to the cosines.

    Returns:
        `torch.Tensor` of shape `(batch_size, ..., 2, g, g)`: channel 0 is ``z_N``, channel 1 is ``z_A``.

    Raises:
        ValueError: if the shapes do not match.
    """
    if patch_embeddings.ndim < 4:
        raise ValueError(
            "`patch_embeddings` must have shape (batch_size, ..., e, g, g), "
            f"got shape {tuple(patch_embeddings.shape)}."
        )
    batch_size, embed_dim = patch_embeddings.shape[0], patch_embeddings.shape[-3]
    if text_embeddings.shape != (batch_size, 2, embed_dim):
        raise ValueError(
            f"`text_embeddings` must have shape (batch_size, 2, e) = ({batch_size}, 2, {embed_dim}) to match "
            f"`patch_embeddings` of shape {tuple(patch_embeddings.shape)}, got {tuple(text_embeddings.shape)}."
        )
    height, width = patch_embeddings.shape[-2:]
    patches = patch_embeddings.reshape(batch_size, -1, embed_dim, height * width)
    # cos = <v, t> / |v| for unit t: dividing the (small) dot products by the norms, rather than normalising the
    # (large) features first, saves a copy of the features; the clamp is F.normalize's.
    dots = torch.matmul(text_embeddings.unsqueeze(1), patches)
    norms = torch.linalg.vector_norm(patches, dim=-2, keepdim=True).clamp_min(1e-12)
    return (dots * (logit_scale / norms)).reshape(*patch_embeddings.shape[:-3], 2, height, width)


def training_probabilities(logits: Tensor, image_size: int | tuple[int, int]) -> Tensor:
    """The training maps of Eq. 12: bilinear upsampling (``align_corners=True``), then softmax over channels.

    Args:
        logits (`torch.Tensor` of shape `(..., 2, g, g)`):
            Patch logits ``[z_N, z_A]``.
        image_size (`int` or `tuple[int, int]`):
            Output size ``H`` (square) or ``(H, W)``.

    Returns:
        `torch.Tensor` of shape `(..., 2, H, W)`: the normal and anomalous probabilities of every pixel.
    """
    _check_logits(logits)
    return _upsample(logits, _image_size_pair(image_size)).softmax(dim=-3)


def _gaussian_kernel1d(kernel_size: int, sigma: float, reference: Tensor) -> Tensor:
    offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).to(device=reference.device, dtype=reference.dtype)


def gaussian_blur(maps: Tensor, kernel_size: int, sigma: float) -> Tensor:
    """Separable, normalised Gaussian blur of the last two dims with reflect padding (METHOD.md, "Outputs").

    The numbers of ``kornia.filters.gaussian_blur2d(maps, (k, k), (sigma, sigma))`` with its default
    ``border_type='reflect'``.

    Args:
        maps (`torch.Tensor` of shape `(..., g, g)`):
            Maps to blur; any leading dims.
        kernel_size (`int`):
            Odd, positive kernel size ``k``; reflect padding needs both spatial dims larger than ``k // 2``.
        sigma (`float`):
            Positive standard deviation in grid cells.

    Returns:
        `torch.Tensor` of the same shape as `maps`.

    Raises:
        ValueError: for an even or non-positive `kernel_size`, a non-positive `sigma`, or `maps` too small for
            reflect padding.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be an odd positive int, got {kernel_size}.")
    if sigma <= 0:
        raise ValueError(f"`sigma` must be positive, got {sigma}.")
    pad = kernel_size // 2
    if maps.ndim < 2 or min(maps.shape[-2:]) <= pad:
        raise ValueError(
            f"`maps` must have shape (..., g, g) with both spatial dims larger than kernel_size // 2 = {pad} "
            f"(reflect padding), got shape {tuple(maps.shape)}."
        )
    if pad == 0:
        return maps
    kernel = _gaussian_kernel1d(kernel_size, sigma, maps)
    flat = F.pad(maps.reshape(-1, 1, *maps.shape[-2:]), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel.view(1, 1, kernel_size, 1))
    flat = F.conv2d(flat, kernel.view(1, 1, 1, kernel_size))
    return flat.reshape(maps.shape)


def anomaly_logit_map(logits: Tensor) -> Tensor:
    """The test-time anomaly map of one (layer, scale) on the grid: ``(z_A + 1 - z_N) / 2`` (METHOD.md, "Outputs").

    Args:
        logits (`torch.Tensor` of shape `(..., 2, g, g)`):
            Patch logits ``[z_N, z_A]``.

    Returns:
        `torch.Tensor` of shape `(..., g, g)`.
    """
    _check_logits(logits)
    normal, anomalous = logits.unbind(dim=-3)
    return (anomalous + 1.0 - normal) / 2.0


def protocol_anomaly_map(
    logits: Tensor, image_size: int | tuple[int, int], kernel_size: int, sigma: float
) -> Tensor:
    """The benchmark-protocol pixel map: the sum over layers x scales of blurred, upsampled anomaly maps.

    Per map ``(z_A + 1 - z_N) / 2``, a Gaussian blur on the grid and bilinear upsampling (``align_corners=True``),
    summed over the ``M`` maps (METHOD.md, "Outputs"). Blur and upsampling are linear, so the maps are summed
    first and blurred and upsampled once. The result is unbounded; the protocol min-max normalises it over all
    images of a class.

    Args:
        logits (`torch.Tensor` of shape `(batch_size, M, 2, g, g)`):
            Patch logits of the ``M = layers x scales`` maps.
        image_size (`int` or `tuple[int, int]`):
            Output size ``H`` (square) or ``(H, W)``.
        kernel_size (`int`):
            Gaussian kernel size (`MoECLIPConfig.blur_kernel_sizes` / `blur_sigmas` of the domain).
        sigma (`float`):
            Gaussian sigma (`MoECLIPConfig.blur_kernel_sizes` / `blur_sigmas` of the domain).

    Returns:
        `torch.Tensor` of shape `(batch_size, H, W)`.
    """
    _check_logits(logits, ndim=5)
    summed = anomaly_logit_map(logits).sum(dim=1)
    blurred = gaussian_blur(summed, kernel_size, sigma)
    return _upsample(blurred.unsqueeze(1), _image_size_pair(image_size)).squeeze(1)


def probability_anomaly_map(
    logits: Tensor, image_size: int | tuple[int, int], kernel_size: int, sigma: float
) -> Tensor:
    """The single-image pixel map in [0, 1]: the mean over layers x scales of the anomaly probability of Eq. 12.

    Per map, the anomalous channel of the softmax over the two upsampled channels, with the blur applied on the
    grid. A softmax over two channels is the sigmoid of their difference, and upsampling is linear, so each map
    is ``sigmoid(upsample(blur(z_A - z_N)))``; the ``M`` maps are then averaged (METHOD.md, "Outputs").

    Args:
        logits (`torch.Tensor` of shape `(batch_size, M, 2, g, g)`):
            Patch logits of the ``M = layers x scales`` maps.
        image_size (`int` or `tuple[int, int]`):
            Output size ``H`` (square) or ``(H, W)``.
        kernel_size (`int`):
            Gaussian kernel size (`MoECLIPConfig.blur_kernel_sizes` / `blur_sigmas` of the domain).
        sigma (`float`):
            Gaussian sigma (`MoECLIPConfig.blur_kernel_sizes` / `blur_sigmas` of the domain).

    Returns:
        `torch.Tensor` of shape `(batch_size, H, W)` with values in [0, 1].
    """
    _check_logits(logits, ndim=5)
    normal, anomalous = logits.unbind(dim=2)
    blurred = gaussian_blur(anomalous - normal, kernel_size, sigma)
    return _upsample(blurred, _image_size_pair(image_size)).sigmoid_().mean(dim=1)


def fuse_image_score(map_max: Tensor, image_score: Tensor, map_weight: float) -> Tensor:
    """Test-time image score (Eq. 14): ``map_weight * map_max + (1 - map_weight) * image_score``.

    Args:
        map_max (`torch.Tensor` of shape `(batch_size,)`):
            Maximum of each image's pixel map.
        image_score (`torch.Tensor` of shape `(batch_size,)`):
            The image head's score, `image_anomaly_score`.
        map_weight (`float`):
            Weight in [0, 1] of the pixel map (`MoECLIPConfig.score_fusion_weights` of the domain).

    Returns:
        `torch.Tensor` of shape `(batch_size,)`.
    """
    if not 0.0 <= map_weight <= 1.0:
        raise ValueError(f"`map_weight` must lie in [0, 1], got {map_weight}.")
    return map_weight * map_max + (1.0 - map_weight) * image_score


def image_anomaly_score(image_cosines: Tensor) -> Tensor:
    """The image head's anomaly score at test time, ``(cos_A + 1) / 2`` (released code, Eq. 14).

    Args:
        image_cosines (`torch.Tensor` of shape `(..., 2)`):
            Cosines ``[cos_N, cos_A]`` of the image embedding with ``[T_N, T_A]``.

    Returns:
        `torch.Tensor` of shape `(...)` with values in [0, 1] for cosines in [-1, 1].
    """
    if image_cosines.ndim < 1 or image_cosines.shape[-1] != 2:
        raise ValueError(
            f"`image_cosines` must have shape (..., 2) with [cos_N, cos_A], got shape {tuple(image_cosines.shape)}."
        )
    return (image_cosines[..., 1] + 1.0) / 2.0
