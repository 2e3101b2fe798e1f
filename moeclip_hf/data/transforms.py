"""CLIP preprocessing and the training augmentation, for an image and its mask together.

Preprocessing (METHOD.md, "Backbone") is the model's own: the processor's `CLIPImageProcessorPil` resizes the
RGB image straight to the square input (bicubic, no crop) and rescales it to [0, 1], the augmentation (if any)
runs on those pixels, and the processor's mean and std normalise them. Masks are resized with nearest
neighbour and binarised (``!= 0``). So evaluation and training see exactly the pixels `MoECLIPProcessor` gives.

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
from transformers import CLIPImageProcessorPil

from .images import binarize_mask, read_pair


def derived_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from a tuple of non-negative integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def preprocess_mask(mask: Image.Image | None, size: tuple[int, int]) -> torch.Tensor:
    """A float32 (1, H, W) tensor of 0/1: `mask` resized with nearest neighbour to `size` (H, W), zeros when None."""
    height, width = size
    if mask is None:
        return torch.zeros(1, height, width)
    resized = binarize_mask(mask).resize((width, height), Image.Resampling.NEAREST)
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
            generator object would be copied into every worker and repeat the same draws
            (training seeds each sample instead: :meth:`for_sample`).
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

    @classmethod
    def for_sample(cls, seed: int, epoch: int, index: int, **options: Any) -> JointAugmentation:
        """The augmentation of sample `index` in epoch `epoch` of a run seeded with `seed` (`options`: the other
        arguments, METHOD.md's values by default).

        Its draws come from a generator seeded with (seed, epoch, index), so they depend neither on the
        DataLoader worker that loads the sample nor on where a run was interrupted and resumed.
        """
        return cls(generator=derived_seed(seed, epoch, index), **options)

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
    """An RGB image and its optional mask -> ``(pixel_values, mask)`` as the model sees and trains on them.

    ``pixel_values`` is float32 (3, H, W), exactly what `image_processor` gives (the parity is tested);
    ``mask`` is float32 (1, H, W) of 0/1, all zeros for a sample without mask (a normal image). With an
    `augmentation`, the pair is augmented between rescaling and normalisation, i.e. on [0, 1] pixels
    (METHOD.md), or after the normalisation with `augment_after_normalization` (the released code's training).

    Args:
        image_processor: the processor's `CLIPImageProcessorPil` (`MoECLIPProcessor.image_processor`).
        augment_after_normalization: augment the normalised pixels instead (the released code's training).
    """

    def __init__(self, image_processor: CLIPImageProcessorPil, augment_after_normalization: bool = False) -> None:
        self.image_processor = image_processor
        self.augment_after_normalization = augment_after_normalization
        size = image_processor.size
        self.size = (int(size["height"]), int(size["width"]))
        self.mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(3, 1, 1)

    def __call__(
        self, image: Image.Image, mask: Image.Image | None = None, augmentation: JointAugmentation | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = self.image_processor(images=image, do_normalize=False, return_tensors="pt")["pixel_values"][0]
        mask_tensor = preprocess_mask(mask, self.size)
        if augmentation is not None and not self.augment_after_normalization:
            pixels, mask_tensor = augmentation(pixels, mask_tensor)
        pixels = (pixels - self.mean) / self.std
        if augmentation is not None and self.augment_after_normalization:
            pixels, mask_tensor = augmentation(pixels, mask_tensor)
        return pixels, mask_tensor


class ExampleTransform:
    """The ``datasets`` batch transform of :func:`moeclip_hf.data.load_benchmark`.

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


__all__ = ["ClipPreprocess", "ExampleTransform", "JointAugmentation", "derived_seed", "preprocess_mask"]
