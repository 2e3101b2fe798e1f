"""Low-level visual statistics of image patches: what the experts' patches look like (paper Sec. E.2, Tab. 14).

The paper characterises the patches each expert wins by three numbers: Sobel gradient (edge strength), contrast
(pixel standard deviation) and Shannon entropy (pattern complexity). They are computed here on what the model
saw: the preprocessed image, CLIP normalisation undone, converted to 8-bit grayscale (ITU-R BT.601 luma, as
PIL's ``"L"`` mode and OpenCV compute it), cut into the vision tower's non-overlapping patches, row-major.

- gradient: the mean over the patch's pixels of the Sobel gradient magnitude ``sqrt(gx^2 + gy^2)`` with the
  unnormalised 3 x 3 kernels, computed on the whole image (so an edge on a patch border counts for both
  patches) with reflect padding (OpenCV's default ``BORDER_REFLECT_101``);
- std: the population standard deviation of the patch's gray levels;
- entropy: the Shannon entropy, in bits, of the histogram of the patch's 256 gray levels.

All three are in 8-bit gray-level units, the scale of Tab. 14.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

__all__ = [
    "LUMA_WEIGHTS",
    "STATISTICS",
    "grayscale_levels",
    "histogram_entropy",
    "patch_statistics",
    "patchify",
    "sobel_magnitude",
    "unnormalize",
]

#: ITU-R BT.601 luma weights of R, G, B.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
#: The statistics of `patch_statistics`, in the column order of Tab. 14.
STATISTICS: tuple[str, ...] = ("gradient", "std", "entropy")

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def unnormalize(
    pixel_values: Tensor, mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> Tensor:
    """Undo the processor's normalisation: ``(B, 3, H, W)`` normalised pixels -> RGB in [0, 1] (clipped).

    Bicubic resizing overshoots slightly at sharp edges, hence the clipping.
    """
    if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
        raise ValueError(f"`pixel_values` must have shape (batch, 3, height, width), got {tuple(pixel_values.shape)}.")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=pixel_values.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=pixel_values.device).view(1, 3, 1, 1)
    return (pixel_values.float() * std_t + mean_t).clamp(0.0, 1.0)


def grayscale_levels(
    pixel_values: Tensor, mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> Tensor:
    """Normalised ``(B, 3, H, W)`` pixels -> ``(B, H, W)`` 8-bit gray levels (integers 0..255, as float)."""
    rgb = unnormalize(pixel_values, mean, std)
    weights = torch.tensor(LUMA_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.round((rgb * weights).sum(dim=1) * 255.0)


def sobel_magnitude(gray: Tensor) -> Tensor:
    """Sobel gradient magnitude of ``(B, H, W)`` images, reflect-padded: same shape, ``sqrt(gx^2 + gy^2)``."""
    if gray.ndim != 3 or min(gray.shape[-2:]) < 2:
        raise ValueError(f"`gray` must have shape (batch, height, width), sides of 2 or more; got {tuple(gray.shape)}.")
    kernel_x = torch.tensor(_SOBEL_X, dtype=gray.dtype, device=gray.device)
    kernels = torch.stack([kernel_x, kernel_x.T]).unsqueeze(1)
    padded = F.pad(gray.unsqueeze(1), (1, 1, 1, 1), mode="reflect")
    gradients = F.conv2d(padded, kernels)
    return gradients.square().sum(dim=1).sqrt()


def patchify(maps: Tensor, patch_size: int) -> Tensor:
    """``(B, H, W)`` -> ``(B, P, patch_size^2)``: non-overlapping patches in the tower's row-major order."""
    if maps.ndim != 3 or maps.shape[-2] % patch_size or maps.shape[-1] % patch_size:
        raise ValueError(
            f"`maps` must have shape (batch, height, width) with sides multiple of the patch size {patch_size}, "
            f"got {tuple(maps.shape)}."
        )
    patches = F.unfold(maps.unsqueeze(1), kernel_size=patch_size, stride=patch_size)
    return patches.transpose(1, 2)


def histogram_entropy(levels: Tensor, num_levels: int = 256) -> Tensor:
    """Shannon entropy in bits of the histogram of integer levels: ``(..., n) -> (...)``.

    A constant patch has entropy 0; a patch split evenly between two levels has entropy 1.
    """
    indices = levels.long()
    if indices.numel() and (indices.min() < 0 or indices.max() >= num_levels):
        raise ValueError(f"`levels` must lie in [0, {num_levels}).")
    counts = torch.zeros(*indices.shape[:-1], num_levels, dtype=torch.float64, device=levels.device)
    counts.scatter_add_(-1, indices, torch.ones_like(indices, dtype=torch.float64))
    probabilities = counts / indices.shape[-1]
    return (-torch.special.xlogy(probabilities, probabilities).sum(dim=-1) / math.log(2.0)).float()


def patch_statistics(
    pixel_values: Tensor,
    patch_size: int,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> dict[str, Tensor]:
    """Gradient, contrast and entropy of every patch of preprocessed images (Tab. 14).

    Args:
        pixel_values (`torch.FloatTensor` of shape `(B, 3, H, W)`): the processor's normalised pixels.
        patch_size (`int`): the vision tower's patch size; H and W must be multiples of it.
        mean, std (`Sequence[float]`, *optional*): the processor's normalisation, CLIP's by default.

    Returns:
        `dict[str, torch.FloatTensor]` with keys `STATISTICS`, each of shape `(B, P)`, patches row-major.
    """
    gray = grayscale_levels(pixel_values, mean, std)
    levels = patchify(gray, patch_size)
    return {
        "gradient": patchify(sobel_magnitude(gray), patch_size).mean(dim=-1),
        "std": levels.std(dim=-1, correction=0),
        "entropy": histogram_entropy(levels),
    }
