"""What the web app accepts: upload checks before any decoding, and the RGB image of an accepted upload.

Uploads are read by the package's one image reader (`moeclip_hf.image_io.read_image`) with the app's limits:
at most `MAX_UPLOAD_BYTES` on disk, at most `MAX_PIXELS` pixels according to the header (checked before any
pixel is decoded), and only the decoders of `IMAGE_FORMATS`. A refusal is an `UploadRejected` whose message
is meant for the page: it names the upload by its file name, never by its path on the server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

from ..image_io import read_image

#: Largest accepted upload, in bytes.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest accepted image, in pixels (width x height), checked from the header before decoding.
MAX_PIXELS = 50_000_000
#: Most images scored by one batch request.
MAX_BATCH_FILES = 64
#: The decoders Pillow may use on an upload; others (EPS, which runs Ghostscript, PSD, ...) are refused.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")


class UploadRejected(ValueError):
    """An upload the app will not process, with a message meant for the page."""


def upload_path(source: Any) -> Path:
    """The file of an upload: a path, or the `.path` / `["path"]` of Gradio's file objects and payloads."""
    path = getattr(source, "path", None) or (source.get("path") if isinstance(source, dict) else None) or source
    return Path(os.fspath(path))


def upload_name(source: Any) -> str:
    """A short name to show for an upload: its file name, or a placeholder for in-memory images."""
    if source is None:
        return "<no image>"
    if isinstance(source, Image.Image):
        return Path(getattr(source, "filename", "") or "image").name
    for key in ("orig_name", "name"):
        name = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        if isinstance(name, str) and name:
            return Path(name).name
    try:
        return upload_path(source).name
    except TypeError:
        return "<upload>"


def load_upload(source: Any, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The RGB image of an upload, refused with `UploadRejected` before any decoding work when unfit.

    `source` is a file path (what Gradio hands over), a Gradio file object or payload with a `path`, or a
    PIL image. The result never carries the upload's server path (`filename`) into reports.
    """
    if source is None:
        raise UploadRejected("No image: upload one (PNG, JPEG, BMP, TIFF, WebP or GIF) first.")
    name = upload_name(source)
    if not isinstance(source, Image.Image):
        try:
            source = upload_path(source)
        except TypeError:
            raise UploadRejected(f"Cannot read an image from a {type(source).__name__}.") from None
        if not source.is_file():
            raise UploadRejected(f"{name}: the upload is missing on the server; upload it again.")
    try:
        image = read_image(source, name=name, max_bytes=max_bytes, max_pixels=max_pixels, formats=IMAGE_FORMATS)
    except (FileNotFoundError, ValueError) as error:
        raise UploadRejected(str(error)) from None  # names the upload by `name`: no server path
    return image.copy() if image is source else image


__all__ = [
    "IMAGE_FORMATS",
    "MAX_BATCH_FILES",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "UploadRejected",
    "load_upload",
    "upload_name",
    "upload_path",
]
