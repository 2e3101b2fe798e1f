"""Any PIL image to 8-bit RGB, the one conversion both the processor and the data pipeline use."""

from __future__ import annotations

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    - 16-bit and 32-bit grayscale (``I;16*``, ``I``, ``F``) are stretched from the image's own minimum
      and maximum to 0..255: medical scanners often fill only 10-12 of the 16 bits, so dividing by
      65535 would give a near-black image and clipping at 255 would saturate it.
    - Transparent images are composited onto white, as transformers' ``convert_to_rgb`` does, so the
      data pipeline and the model's processor see the same pixels.
    - Everything else (L, 1, P, CMYK, YCbCr, ...) uses PIL's own conversion.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _stretch_to_8bit(image).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def _stretch_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    if high <= low:
        return Image.fromarray(np.zeros(values.shape, dtype=np.uint8))
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) * (255.0 / (high - low))
    return Image.fromarray(np.round(scaled).astype(np.uint8))
