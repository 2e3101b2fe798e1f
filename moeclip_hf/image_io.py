"""Reading images: the one reader every entry point uses (data, pipeline, endpoint handler, web app).

`load_image` accepts what transformers' `transformers.image_utils.load_image` accepts (a path, an http(s)
URL, a base64 string with or without a `data:image/...;base64,` prefix, a PIL image) and what our users and
`datasets` hand over besides (raw bytes, a numpy array, the `{"bytes", "path"}` mapping of an undecoded
`datasets.Image` column). Like transformers' reader it applies the EXIF orientation. It decodes the whole
image at once, so a truncated file fails here, with a `ValueError` naming the source, and not later inside a
DataLoader worker; limits on the encoded size, the pixel count (read from the header, before decoding) and
the decoders Pillow may use are checked first.

`read_image` is `load_image` followed by `to_rgb`, the one RGB conversion of the package. transformers ends
its reader with PIL's `convert("RGB")`, which puts transparent pixels on black and clips 16-bit grey at
255; `to_rgb` composites transparency onto white (as transformers' image processors do) and stretches
16-bit grey by its own range. For the modes where the two agree (RGB, L, P without transparency, CMYK),
`read_image` gives transformers' pixels exactly (tested).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource: TypeAlias = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray | Mapping[str, Any]

_WHITE = (255, 255, 255, 255)
_DATA_URL = "data:"
_URL_SCHEMES = ("http://", "https://")


def source_name(source: Any) -> str:
    """The name an error message should show for `source`: its path, or what kind of in-memory image it is."""
    if source is None:
        return "<no file>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<in-memory image>"
    if isinstance(source, Mapping):
        return source.get("path") or "<in-memory image>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<image bytes>"
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, str) and _is_base64_text(source):
        return "<base64 image>"
    return os.fspath(source)


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    formats: Sequence[str] | None = None,
    timeout: float | None = None,
) -> Image.Image:
    """Decode `source` fully, as stored (no mode conversion), turned upright by its EXIF orientation.

    Args:
        source: a path, an http(s) URL, a base64 string (a `data:` URL prefix allowed), raw bytes, a PIL image,
            a numpy array, or a `datasets` `{"bytes", "path"}` mapping.
        name: how errors name the source (default: `source_name(source)`); a web app passes the upload's
            file name so that no server path reaches the page.
        max_bytes: refuse encoded images larger than this, before decoding (base64: before decoding it).
        max_pixels: refuse images with more pixels, from the header, before decoding. Without it, Pillow's
            own decompression-bomb limit applies (it refuses more than twice `Image.MAX_IMAGE_PIXELS`).
        formats: the Pillow decoders allowed (e.g. `("PNG", "JPEG")`); default: all.
        timeout: seconds to wait for a URL.

    Raises:
        FileNotFoundError: `image not found: <name>` for a path that does not exist.
        ValueError: `cannot read image <name>: <reason>` for anything else that is not a decodable image
            within the limits, including an image without pixels.
    """
    name = name or source_name(source)
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source, name)
    else:
        data = _encoded_bytes(source, name, max_bytes, timeout)
        image = _decode(data, name, max_pixels, formats)
    _check_pixels(image, name, max_pixels)
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise _unreadable(name, error) from None


def read_image(source: ImageSource, **limits: Any) -> Image.Image:
    """`load_image` (same arguments and errors), then `to_rgb`: the image every model input starts from."""
    image = load_image(source, **limits)
    name = limits.get("name") or source_name(source)
    try:
        return to_rgb(image)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot convert image {name} from mode {image.mode} to RGB: {error}") from error


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


def _is_base64_text(text: str) -> bool:
    """Whether a string is meant as base64, the way transformers' reader decides: not a URL, not an existing file;
    a string with a dot or a backslash (never in base64) that names no file is a missing path instead."""
    if text.startswith(_DATA_URL):
        return True
    if text.startswith(_URL_SCHEMES) or os.path.isfile(text):
        return False
    return "." not in text and "\\" not in text


def _encoded_bytes(source: Any, name: str, max_bytes: int | None, timeout: float | None) -> bytes:
    """The encoded image of a path, URL, base64 string, bytes or `datasets` mapping, size-checked."""
    if isinstance(source, Mapping) and source.get("bytes") is not None:
        source = source["bytes"]
    elif isinstance(source, Mapping):
        source = source.get("path")
        if source is None:
            raise ValueError(f"cannot read image {name}: the mapping holds neither bytes nor a path")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and source.startswith(_URL_SCHEMES):
        import httpx  # a transformers dependency, as in transformers' own reader

        data = httpx.get(source, timeout=timeout, follow_redirects=True).raise_for_status().content
    elif isinstance(source, str) and _is_base64_text(source):
        try:
            data = decode_base64(source, name=name, max_bytes=max_bytes)
        except ValueError as error:
            if source.startswith(_DATA_URL) or "not valid base64" not in str(error):
                raise
            raise ValueError(f"cannot read image {name}: not an existing file, a URL or valid base64") from None
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), name, max_bytes)
    else:
        raise ValueError(
            f"cannot read image {name}: expected a path, URL, base64 string, bytes, PIL image or array; "
            f"got {type(source).__name__}"
        )
    _check_size(len(data), name, max_bytes)
    return data


def _read_file(path: Path, name: str, max_bytes: int | None) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {name}")
    _check_size(path.stat().st_size, name, max_bytes)
    return path.read_bytes()


def decode_base64(text: str, *, name: str = "<base64 image>", max_bytes: int | None = None) -> bytes:
    """The bytes of a base64 image string (a `data:image/...;base64,` prefix allowed), size-checked before decoding.

    For callers that take base64 only, e.g. a web endpoint, which must never read a file or URL a request names.
    """
    if text.startswith(_DATA_URL):
        text = text.partition(",")[2]
    text = "".join(text.split())
    _check_size(len(text) * 3 // 4, name, max_bytes)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"cannot read image {name}: not valid base64 ({error})") from None


def _check_size(size: int, name: str, max_bytes: int | None) -> None:
    """Refuse empty and over-size encodings before any decoding work is spent on them."""
    if size == 0:
        raise ValueError(f"cannot read image {name}: it is an empty file")
    if max_bytes is not None and size > max_bytes:
        raise ValueError(
            f"cannot read image {name}: it holds {_amount(size, '.1f')}, more than the limit of {_amount(max_bytes, 'g')}"
        )


def _amount(size: int, spec: str) -> str:
    """A byte count as people read it: bytes below a MiB, MB (MiB) above."""
    return f"{size} bytes" if size < 2**20 else f"{size / 2**20:{spec}} MB"


def _decode(data: bytes, name: str, max_pixels: int | None, formats: Sequence[str] | None) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=None if formats is None else list(formats))
        _check_pixels(image, name, max_pixels)  # from the header: nothing is decoded yet
        image.load()
    except ValueError as error:
        if str(error).startswith("cannot read image"):
            raise
        raise _unreadable(name, error, formats) from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise _unreadable(name, error, formats) from None
    return image


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    try:
        return Image.fromarray(array)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot read image {name}: an array of shape {array.shape} and dtype {array.dtype} ({error})") from None


def _check_pixels(image: Image.Image, name: str, max_pixels: int | None) -> None:
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"cannot read image {name}: it is empty ({width}x{height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"cannot read image {name}: it is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), "
            f"more than the limit of {max_pixels / 1e6:g} megapixels"
        )


def _unreadable(name: str, error: BaseException, formats: Sequence[str] | None = None) -> ValueError:
    """The error for bytes Pillow cannot decode: what was expected, and Pillow's reason when it says more than
    "cannot identify" (whose message would show an in-memory buffer's address)."""
    kind = "not a decodable image"
    if formats:
        kind = f"not a {', '.join(formats[:-1])} or {formats[-1]} image" if len(formats) > 1 else f"not a {formats[0]} image"
    detail = "" if isinstance(error, UnidentifiedImageError) else f" ({error})"
    return ValueError(f"cannot read image {name}: {kind}{detail}")


__all__ = ["ImageSource", "decode_base64", "load_image", "read_image", "source_name", "to_rgb"]
