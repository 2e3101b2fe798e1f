"""Reading benchmark images and masks into the two forms the method uses: RGB images and binary masks.

Real benchmarks are not uniform: BMAD and Head CT ship 8- and 16-bit grayscale slices, VisA masks are
palette images, users drop in RGBA screenshots and CMYK JPEGs. ARCHITECTURE.md asks that such files be
converted, never crash, and that a file that cannot be decoded fail with an error naming it. Every
image therefore goes through :func:`read_image` (-> RGB) and every mask through :func:`read_mask`
(-> binary "L", METHOD.md "Backbone": masks are binarised with ``!= 0``).

A *source* is what a `datasets` row or a user hands over: a path, an already opened ``PIL.Image``,
or the ``{"bytes", "path"}`` mapping stored by an undecoded ``datasets.Image`` column.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
from PIL import Image

from ..modeling.image_conversion import to_rgb

ImageSource: TypeAlias = str | os.PathLike | Image.Image | Mapping[str, Any]

#: File suffixes the layouts treat as images (lower case).
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def source_name(source: ImageSource | None) -> str:
    """The file name an error message should show for `source`."""
    if source is None:
        return "<no file>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<in-memory image>"
    if isinstance(source, Mapping):
        return source.get("path") or "<in-memory image>"
    return os.fspath(source)


def open_image(source: ImageSource) -> Image.Image:
    """Decode `source` fully, as stored (no mode conversion).

    The whole file is read and decoded here, so a truncated or corrupt file fails now, with
    ``ValueError("cannot read image <path>: ...")``, and not later inside a DataLoader worker. So do an
    image without pixels and one of more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels, which PIL
    refuses from its header, before decoding anything (between once and twice the limit it only warns).
    """
    name = source_name(source)
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, Mapping) and source.get("bytes") is not None:
            image = Image.open(io.BytesIO(source["bytes"]))
        else:
            path = source["path"] if isinstance(source, Mapping) else source
            with open(path, "rb") as handle:
                image = Image.open(io.BytesIO(handle.read()))
        image.load()
    except FileNotFoundError as error:
        raise FileNotFoundError(f"image not found: {name}") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {name}: {error}") from error
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot read image {name}: it is empty ({image.width}x{image.height} pixels)")
    return image


def binarize_mask(mask: Image.Image) -> Image.Image:
    """A mode "L" mask holding 255 where `mask` is non-zero and 0 elsewhere (METHOD.md: ``!= 0``).

    Single-band masks (1, L, P, I;16, I, F) are tested on their stored values, so a palette mask's
    background index 0 stays background whatever colour its palette gives it; multi-band masks
    count a pixel as anomalous when any colour channel is non-zero.
    """
    single_band = len(mask.getbands()) == 1
    values = np.asarray(mask) if single_band else np.asarray(mask.convert("RGB")).any(axis=-1)
    return Image.fromarray(np.where(values != 0, 255, 0).astype(np.uint8))


def read_image(source: ImageSource) -> Image.Image:
    """Decode `source` and convert it to RGB (see :func:`to_rgb`)."""
    image = open_image(source)
    try:
        return to_rgb(image)
    except (OSError, ValueError) as error:
        name = source_name(source)
        raise ValueError(f"cannot convert image {name} from mode {image.mode} to RGB: {error}") from error


def read_mask(source: ImageSource) -> Image.Image:
    """Decode `source` and binarise it (see :func:`binarize_mask`)."""
    return binarize_mask(open_image(source))


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
