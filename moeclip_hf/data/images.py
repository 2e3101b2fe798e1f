"""Reading benchmark images and masks into the two forms the method uses: RGB images and binary masks.

Real benchmarks are not uniform: BMAD and Head CT ship 8- and 16-bit grayscale slices, VisA masks are
palette images, users drop in RGBA screenshots and CMYK JPEGs. ARCHITECTURE.md asks that such files be
converted, never crash, and that a file that cannot be decoded fail with an error naming it. Every
image therefore goes through `moeclip_hf.image_io.read_image` (-> RGB) and every mask through
:func:`read_mask` (-> binary "L", METHOD.md "Backbone": masks are binarised with ``!= 0``).

A *source* is what a `datasets` row or a user hands over: a path, an already opened ``PIL.Image``,
or the ``{"bytes", "path"}`` mapping stored by an undecoded ``datasets.Image`` column.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..image_io import ImageSource, load_image, read_image, source_name

#: File suffixes the layouts treat as images (lower case).
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def binarize_mask(mask: Image.Image) -> Image.Image:
    """A mode "L" mask holding 255 where `mask` is non-zero and 0 elsewhere (METHOD.md: ``!= 0``).

    Single-band masks (1, L, P, I;16, I, F) are tested on their stored values, so a palette mask's
    background index 0 stays background whatever colour its palette gives it; multi-band masks
    count a pixel as anomalous when any colour channel is non-zero.
    """
    single_band = len(mask.getbands()) == 1
    values = np.asarray(mask) if single_band else np.asarray(mask.convert("RGB")).any(axis=-1)
    return Image.fromarray(np.where(values != 0, 255, 0).astype(np.uint8))


def read_mask(source: ImageSource) -> Image.Image:
    """Decode `source` (`moeclip_hf.image_io.load_image`) and binarise it (see :func:`binarize_mask`)."""
    return binarize_mask(load_image(source))


def read_pair(image_source: ImageSource, mask_source: ImageSource | None) -> tuple[Image.Image, Image.Image | None]:
    """The RGB image and its binary mask (``None`` when the sample has none).

    A mask must cover its image pixel for pixel: resizing one of them silently would shift every
    ground-truth region, so a size mismatch raises a ValueError naming both files.
    """
    image = read_image(image_source)
    if mask_source is None:
        return image, None
    mask = read_mask(mask_source)
    if mask.size != image.size:
        raise ValueError(
            f"mask {source_name(mask_source)} is {mask.size[0]}x{mask.size[1]} but its image "
            f"{source_name(image_source)} is {image.size[0]}x{image.size[1]}"
        )
    return image, mask


__all__ = ["IMAGE_SUFFIXES", "binarize_mask", "read_image", "read_mask", "read_pair", "source_name"]
