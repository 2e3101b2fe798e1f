"""Inference Endpoints handler of an exported MoECLIP repository.

The endpoint calls `EndpointHandler(path)` once with the repository folder, then `handler(data)` per
request, where `data` is the request's JSON body:

```json
{"inputs": "<base64-encoded PNG or JPEG>",
 "parameters": {"class_name": "metal nut", "threshold": 0.5, "output_format": "anomaly"}}
```

`inputs` may also be raw image bytes or an already decoded PIL image (the endpoint toolkit decodes binary
image requests itself). The answer is the zero-shot-anomaly-detection pipeline's result made
JSON-serialisable: every image in it (the anomaly map, or the masks with `output_format="segmentation"`)
becomes a base64-encoded PNG string.

The model, processor and pipeline are loaded from the repository's own remote code
(`trust_remote_code=True`), so the endpoint runs the code exported with the weights and needs only the
packages of `requirements.txt`, not `moeclip_hf`.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

from PIL import Image
from transformers import pipeline

TASK = "zero-shot-anomaly-detection"
#: Request parameters handed to the pipeline; anything else is refused rather than silently ignored.
PARAMETERS = ("class_name", "threshold", "output_format", "domain", "dataset")
#: Environment variable holding the largest accepted decoded payload, in bytes.
MAX_PAYLOAD_ENV = "MOECLIP_MAX_PAYLOAD_BYTES"
DEFAULT_MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
_DATA_URL_PREFIX = "data:"


def max_payload_bytes() -> int:
    """The payload limit: `MOECLIP_MAX_PAYLOAD_BYTES` when set, 20 MiB otherwise (read per request)."""
    value = os.environ.get(MAX_PAYLOAD_ENV)
    if value is None:
        return DEFAULT_MAX_PAYLOAD_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"{MAX_PAYLOAD_ENV} must be a positive number of bytes; got {value!r}.") from None
    if limit < 1:
        raise ValueError(f"{MAX_PAYLOAD_ENV} must be a positive number of bytes; got {limit}.")
    return limit


def _check_size(size: int, limit: int) -> None:
    """Refuse empty and over-size payloads before any decoding work is spent on them."""
    if size == 0:
        raise ValueError("The image payload is empty.")
    if size > limit:
        raise ValueError(
            f"The image payload holds {size} bytes, more than the limit of {limit} bytes ({MAX_PAYLOAD_ENV})."
        )


def decode_base64(text: str, limit: int) -> bytes:
    """Bytes of a base64 string (a `data:image/...;base64,` URL prefix allowed), size-checked before decoding."""
    if text.startswith(_DATA_URL_PREFIX):
        text = text.partition(",")[2]
    text = "".join(text.split())
    _check_size(len(text) * 3 // 4, limit)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as error:  # binascii.Error (bad characters or padding) is a ValueError
        raise ValueError(f"`inputs` is not valid base64: {error}.") from None


def payload_bytes(inputs: Any, limit: int) -> bytes:
    """The encoded image of a request's `inputs`: a base64 string or raw bytes, at most `limit` bytes."""
    if isinstance(inputs, str):
        data = decode_base64(inputs, limit)
    elif isinstance(inputs, (bytes, bytearray, memoryview)):
        data = bytes(inputs)
    else:
        kind = type(inputs).__name__
        raise ValueError(f"`inputs` must be a base64-encoded image string or raw image bytes; got {kind}.")
    _check_size(len(data), limit)
    return data


def open_image(data: bytes) -> Image.Image:
    """Decode an encoded image fully, so that a truncated or non-image payload fails here with a clear message."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"The payload is not a decodable image (PNG, JPEG, BMP, TIFF, WebP, ...): {error}") from None
    check_image(image)
    return image


def check_image(image: Image.Image) -> None:
    """Refuse an image without pixels: nothing to score, and the pipeline would fail deep inside resizing."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f"The image is empty ({image.width}x{image.height} pixels).")


def read_request_image(inputs: Any) -> Image.Image:
    """The image of a request's `inputs`: a PIL image as is, otherwise decoded from base64 or bytes."""
    if isinstance(inputs, Image.Image):
        check_image(inputs)
        return inputs
    return open_image(payload_bytes(inputs, max_payload_bytes()))


def pipeline_parameters(parameters: Any) -> dict[str, Any]:
    """The request's `parameters` (a mapping of known pipeline arguments, or absent)."""
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ValueError(f"`parameters` must be an object; got {type(parameters).__name__}.")
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"Unknown parameters {unknown}; accepted: {list(PARAMETERS)}.")
    return dict(parameters)


def encode_png(image: Image.Image) -> str:
    """A PIL image as a base64-encoded PNG string."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def to_json(result: Any) -> Any:
    """The pipeline's result with every PIL image replaced by its base64 PNG."""
    if isinstance(result, Image.Image):
        return encode_png(result)
    if isinstance(result, dict):
        return {key: to_json(value) for key, value in result.items()}
    if isinstance(result, (list, tuple)):
        return [to_json(value) for value in result]
    return result


class EndpointHandler:
    """The Inference Endpoints contract: `EndpointHandler(path)(data) -> dict | list`.

    Args:
        path (`str`, *optional*): the repository folder; defaults to the folder of this file.
    """

    def __init__(self, path: str = "") -> None:
        model_path = path or str(Path(__file__).resolve().parent)
        self.pipeline = pipeline(TASK, model=model_path, trust_remote_code=True)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('The request body must be an object with "inputs" (and optionally "parameters").')
        image = read_request_image(data["inputs"])
        result = self.pipeline(image, **pipeline_parameters(data.get("parameters")))
        return to_json(result)
