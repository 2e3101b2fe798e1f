"""Pictures of anomaly maps: heat maps on matplotlib's colour maps, and overlays with the threshold contour.

The one overlay of the package: `moeclip detect`, `moeclip demo`, `moeclip serve` and the exported Space all
draw it. Only the colour map comes from matplotlib (no figure, so no backend is chosen).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def heat_map(anomaly_map: np.ndarray, colormap: str = "jet") -> Image.Image:
    """An RGB picture of a map with values in [0, 1] (clipped), coloured with a matplotlib colormap."""
    from matplotlib import colormaps  # imported here: `import moeclip_hf.inference` stays light

    values = np.clip(np.asarray(anomaly_map, dtype=np.float32), 0.0, 1.0)
    if values.ndim != 2:
        raise ValueError(f"anomaly_map must be 2-D (height, width); got shape {values.shape}.")
    rgba = colormaps[colormap](values)
    return Image.fromarray(np.round(rgba[..., :3] * 255).astype(np.uint8))


def contour(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask: set pixels with at least one unset 4-neighbour (or the border)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(
    image: Image.Image,
    anomaly_map: np.ndarray,
    threshold: float | None = None,
    alpha: float = 0.5,
    contour_color: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """The image with the heat map blended over it and, given a threshold, the contour of `map >= threshold`.

    `anomaly_map` must have the image's size (height, width); the result has it too.
    """
    values = np.asarray(anomaly_map, dtype=np.float32)
    if values.shape != (image.height, image.width):
        raise ValueError(f"anomaly_map of shape {values.shape} does not match the image's {image.height}x{image.width}.")
    blended = Image.blend(image.convert("RGB"), heat_map(values), alpha)
    if threshold is None:
        return blended
    pixels = np.array(blended)
    pixels[contour(values >= threshold)] = contour_color
    return Image.fromarray(pixels)


__all__ = ["contour", "heat_map", "overlay"]
