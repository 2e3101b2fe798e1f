"""Inference Endpoints handler of an exported MoECLIP repository.

The endpoint calls `EndpointHandler(path)` once with the repository folder, then `handler(data)` per
request, where `data` is the request's JSON body:

```json
{"inputs": "<base64-encoded PNG or JPEG>",
 "parameters": {"class_name": "metal nut", "threshold": 0.5, "output_format": "anomaly"}}
```

`inputs` may also be raw image bytes or an already decoded PIL image (the endpoint toolkit decodes binary
image requests itself); a string is always base64, never a file or URL to fetch. The answer is the
zero-shot-anomaly-detection pipeline's result made JSON-serialisable: every image in it (the anomaly map, or
the masks with `output_format="segmentation"`) becomes a base64-encoded PNG string, an array a nested list.

`moeclip export` bundles this module, with the image reader it imports, into the repository's `handler.py`
(`moeclip_hf.hub.remote_code.bundle_source`), which imports nothing from `moeclip_hf`. The model, processor and
pipeline are loaded from the repository's own remote code (`trust_remote_code=True`), so the endpoint needs only
the packages of `requirements.txt`.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..image_io import decode_base64, load_image
from ..inference.task import TASK

#: Request parameters handed to the pipeline; anything else is refused rather than silently ignored.
PARAMETERS = ("class_name", "threshold", "output_format", "domain", "dataset")
#: Environment variable holding the largest accepted decoded payload, in bytes.
MAX_PAYLOAD_ENV = "MOECLIP_MAX_PAYLOAD_BYTES"
DEFAULT_MAX_PAYLOAD_BYTES = 20 * 1024 * 1024
#: How errors name a request's image.
REQUEST_IMAGE = "from the request"


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


def read_request_image(inputs: Any) -> Image.Image:
    """The decoded image of a request's `inputs`: a base64 string, raw bytes or a PIL image, within the limit."""
    limit = max_payload_bytes()
    if isinstance(inputs, str):
        inputs = decode_base64(inputs, name=REQUEST_IMAGE, max_bytes=limit)
    elif not isinstance(inputs, (bytes, bytearray, memoryview, Image.Image)):
        kind = type(inputs).__name__
        raise ValueError(f"`inputs` must be a base64-encoded image string or raw image bytes; got {kind}.")
    return load_image(inputs, name=REQUEST_IMAGE, max_bytes=limit)


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
    """The pipeline's result with every PIL image replaced by its base64 PNG and every array by a nested list."""
    if isinstance(result, Image.Image):
        return encode_png(result)
    if isinstance(result, np.ndarray):
        return result.tolist()
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
        from transformers import pipeline

        model_path = path or str(Path(__file__).resolve().parent)
        self.pipeline = pipeline(TASK, model=model_path, trust_remote_code=True)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('The request body must be an object with "inputs" (and optionally "parameters").')
        image = read_request_image(data["inputs"])
        result = self.pipeline(image, **pipeline_parameters(data.get("parameters")))
        return to_json(result)


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_ENV",
    "PARAMETERS",
    "EndpointHandler",
    "encode_png",
    "max_payload_bytes",
    "pipeline_parameters",
    "read_request_image",
    "to_json",
]
