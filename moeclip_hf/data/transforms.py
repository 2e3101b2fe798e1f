"""CLIP preprocessing and the training augmentation, for an image and its mask together.

Preprocessing (METHOD.md, "Backbone"): RGB, resize straight to the model's square input size with
bicubic interpolation and no crop, CLIP mean/std normalisation; masks are resized with nearest
neighbour and binarised (``!= 0``). The resize runs in PIL because that is what both CLIP's image
processor and the released MoECLIP code do, so training and evaluation pixels match the model's
processor exactly; everything after it runs on tensors with kornia.

Augmentation (METHOD.md, "Losses and training"): rotation up to 30 degrees, translation up to 15 %,
horizontal and vertical flips, each with probability 0.5 and applied to image and mask alike; a
brightness/contrast/saturation jitter of 0.5 on the image only. The released code's training runs the
geometric steps on the normalised image with nearest interpolation (so the fill is the mean colour) and
never the jitter: ``JointAugmentation(color_jitter=False, interpolation="nearest")`` inside
``ClipPreprocess(..., augment_after_normalization=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image

from .images import binarize_mask, read_pair

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return image_size


def image_to_unit_tensor(image: Image.Image, image_size: int) -> torch.Tensor:
    """RGB `image` resized (bicubic, no crop) to a float32 (3, S, S) tensor in [0, 1]."""
    size = _check_size(image_size)
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return kornia.utils.image_to_tensor(np.array(resized)).float().div_(255.0)


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """CLIP mean/std normalisation of a [0, 1] tensor of shape (3, H, W) or (B, 3, H, W)."""
    mean = torch.tensor(CLIP_MEAN, dtype=pixels.dtype, device=pixels.device)
    std = torch.tensor(CLIP_STD, dtype=pixels.dtype, device=pixels.device)
    batched = pixels if pixels.ndim == 4 else pixels.unsqueeze(0)
    normalized = kornia.enhance.normalize(batched, mean, std)
    return normalized if pixels.ndim == 4 else normalized.squeeze(0)


def preprocess_image(image: Image.Image, image_size: int) -> torch.Tensor:
    """CLIP preprocessing of one RGB image: float32 (3, S, S), normalised."""
    return normalize_pixels(image_to_unit_tensor(image, image_size))


def preprocess_mask(mask: Image.Image | None, image_size: int) -> torch.Tensor:
    """A float32 (1, S, S) tensor of 0/1: `mask` resized with nearest neighbour, zeros when None."""
    size = _check_size(image_size)
    if mask is None:
        return torch.zeros(1, size, size)
    resized = binarize_mask(mask).resize((size, size), Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(resized) != 0).float().unsqueeze(0)


class JointAugmentation:
    """The MoECLIP training augmentation, one random draw shared by an image and its mask.

    Geometric steps (rotation, translation, flips) move image and mask together; the mask is
    resampled with nearest neighbour so it stays binary. Rotation and translation are one affine
    warp (one interpolation, zero fill outside the image: black on [0, 1] pixels, the mean colour on
    CLIP-normalised ones). Colour jitter touches the image only,
    with torchvision's definitions (brightness scales, contrast and saturation blend with the
    grayscale mean / grayscale image), factors drawn from [1 - j, 1 + j], applied in that order.

    Args:
        rotation: largest rotation in degrees (METHOD.md: 30).
        translation: largest shift as a fraction of the side (METHOD.md: 0.15).
        brightness, contrast, saturation: jitter strengths (METHOD.md: 0.5 each).
        p: probability of each geometric step (METHOD.md: 0.5).
        color_p: probability of the colour jitter (METHOD.md: 0.5; the released code defines 0.7).
        color_jitter: False never jitters (the released code's training, which defines but skips it).
        interpolation: resampling of the image in the warp: "bilinear" (METHOD.md) or "nearest" (the
            released code).
        generator: a ``torch.Generator`` or an int seed for reproducible draws. Leave it None in
            DataLoader workers: torch seeds its global generator per worker, whereas one
            generator object would be copied into every worker and repeat the same draws.
    """

    def __init__(
        self,
        rotation: float = 30.0,
        translation: float = 0.15,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        p: float = 0.5,
        color_p: float = 0.5,
        color_jitter: bool = True,
        interpolation: str = "bilinear",
        generator: torch.Generator | int | None = None,
    ) -> None:
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        for name, value in (("p", p), ("color_p", color_p), ("translation", translation)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} jitter must lie in [0, 1], got {value}")
        self.rotation = float(rotation)
        self.translation = float(translation)
        self.jitter = (float(brightness), float(contrast), float(saturation))
        self.p = float(p)
        self.color_p = float(color_p)
        self.color_jitter = bool(color_jitter)
        self.interpolation = interpolation
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        self.generator = generator

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment `image` (3, H, W) in [0, 1] and `mask` (1, H, W), or batches of both (B, ...)."""
        batched = image.ndim == 4
        images, masks = (image, mask) if batched else (image.unsqueeze(0), mask.unsqueeze(0))
        if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} do not match")
        images, masks = self._geometric(images, masks.float())
        if self.color_jitter:
            images = self._color(images)
        return (images, masks) if batched else (images.squeeze(0), masks.squeeze(0))

    def _rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        # Drawn on the CPU generator, then moved: the same seed gives the same draws on any device.
        return torch.rand(*shape, generator=self.generator).to(device)

    def _coin(self, count: int, p: float, device: torch.device) -> torch.Tensor:
        return self._rand(count, device=device) < p

    def _uniform(self, low: float, high: float, *shape: int, device: torch.device) -> torch.Tensor:
        return low + (high - low) * self._rand(*shape, device=device)

    def _geometric(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count, _, height, width = images.shape
        device = images.device
        rotate = self._coin(count, self.p, device)
        angle = torch.where(rotate, self._uniform(-self.rotation, self.rotation, count, device=device), 0.0)
        shift_on = self._coin(count, self.p, device)
        shift = self._uniform(-self.translation, self.translation, count, 2, device=device)
        shift = torch.where(shift_on[:, None], shift * torch.tensor([width, height], device=device), 0.0)
        flip_h, flip_v = self._coin(count, self.p, device), self._coin(count, self.p, device)

        warp = rotate | shift_on
        if warp.any():
            center = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=device).expand(int(warp.sum()), 2)
            matrix = kornia.geometry.transform.get_rotation_matrix2d(center, angle[warp], torch.ones_like(center))
            matrix[..., 2] += shift[warp]
            images, masks = images.clone(), masks.clone()
            images[warp] = kornia.geometry.transform.warp_affine(
                images[warp], matrix, (height, width), mode=self.interpolation, padding_mode="zeros"
            )
            masks[warp] = kornia.geometry.transform.warp_affine(
                masks[warp], matrix, (height, width), mode="nearest", padding_mode="zeros"
            )
        images = torch.where(flip_h[:, None, None, None], images.flip(-1), images)
        masks = torch.where(flip_h[:, None, None, None], masks.flip(-1), masks)
        images = torch.where(flip_v[:, None, None, None], images.flip(-2), images)
        masks = torch.where(flip_v[:, None, None, None], masks.flip(-2), masks)
        return images, masks

    def _color(self, images: torch.Tensor) -> torch.Tensor:
        count = images.shape[0]
        jitter_on = self._coin(count, self.color_p, images.device)
        if not jitter_on.any():
            return images
        brightness, contrast, saturation = (
            torch.where(jitter_on, self._uniform(1.0 - j, 1.0 + j, count, device=images.device), 1.0)
            for j in self.jitter
        )
        jittered = kornia.enhance.adjust_brightness_accumulative(images, brightness)
        jittered = kornia.enhance.adjust_contrast_with_mean_subtraction(jittered, contrast)
        jittered = kornia.enhance.adjust_saturation_with_gray_subtraction(jittered, saturation)
        return torch.where(jitter_on[:, None, None, None], jittered, images)


class ClipPreprocess:
    """An RGB image and its optional mask -> ``(pixel_values, mask)`` as the model trains on them.

    ``pixel_values`` is float32 (3, S, S), CLIP-normalised; ``mask`` is float32 (1, S, S) of 0/1,
    all zeros for a sample without mask (a normal image). With `augmentation`, the pair is
    augmented between resizing and normalisation, i.e. on [0, 1] pixels (METHOD.md), or after the
    normalisation with `augment_after_normalization` (the released code's training).
    """

    def __init__(
        self, image_size: int, augmentation: JointAugmentation | None = None, augment_after_normalization: bool = False
    ) -> None:
        self.image_size = _check_size(image_size)
        self.augmentation = augmentation
        self.augment_after_normalization = augment_after_normalization

    def __call__(self, image: Image.Image, mask: Image.Image | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image_to_unit_tensor(image, self.image_size)
        mask_tensor = preprocess_mask(mask, self.image_size)
        if self.augmentation is not None and not self.augment_after_normalization:
            pixels, mask_tensor = self.augmentation(pixels, mask_tensor)
        pixels = normalize_pixels(pixels)
        if self.augmentation is not None and self.augment_after_normalization:
            pixels, mask_tensor = self.augmentation(pixels, mask_tensor)
        return pixels, mask_tensor


class ExampleTransform:
    """The ``datasets`` batch transform behind :func:`make_transform`.

    It decodes the ``image`` and ``mask`` columns itself (they are stored undecoded), so a bad
    file fails with an error naming it, and a mask whose size differs from its image fails naming
    both. Without a preprocessor the rows get an RGB ``PIL`` image and a binary ``L`` mask (or
    None); with one, ``pixel_values`` and ``mask`` tensors replace them. Other columns pass through.
    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(self, preprocess: ClipPreprocess | None = None) -> None:
        self.preprocess = preprocess

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        count = len(batch["image"])
        masks = batch.get("mask", [None] * count)
        pairs = [read_pair(image, mask) for image, mask in zip(batch["image"], masks, strict=True)]
        others = {key: list(values) for key, values in batch.items() if key not in ("image", "mask")}
        if self.preprocess is None:
            return {"image": [image for image, _ in pairs], "mask": [mask for _, mask in pairs], **others}
        tensors = [self.preprocess(image, mask) for image, mask in pairs]
        return {"pixel_values": [pixels for pixels, _ in tensors], "mask": [mask for _, mask in tensors], **others}


def make_transform(
    image_size: int | None, augment: bool = False, generator: torch.Generator | int | None = None
) -> ExampleTransform:
    """The transform for ``Dataset.with_transform``: decoding only when `image_size` is None,
    otherwise CLIP preprocessing at `image_size`, with the training augmentation when `augment`."""
    if image_size is None:
        if augment:
            raise ValueError("augment=True needs an image_size: the augmentation runs on resized tensors")
        return ExampleTransform()
    augmentation = JointAugmentation(generator=generator) if augment else None
    return ExampleTransform(ClipPreprocess(image_size, augmentation))
