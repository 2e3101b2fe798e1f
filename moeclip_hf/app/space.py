"""The web app of an exported repository, as a Hugging Face Space (`sdk: gradio`, `app_file: app.py`).

`moeclip export` bundles this module, with the app's modules it imports, into the repository's `app.py`
(`moeclip_hf.hub.remote_code.bundle_source`): one self-contained file that imports nothing from `moeclip_hf`.
The model, processor and pipeline come from the repository's own remote code (`trust_remote_code=True`), so
the page scores exactly as `moeclip serve` does; it has no routing tab (that needs `moeclip_hf`, see
`moeclip serve`).

Environment variables: `MOECLIP_MODEL` (the model folder or Hub id; default: the folder of `app.py`),
`GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` (set by Spaces).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..inference.task import TASK
from .ui import build_demo, launch_demo

MODEL_ENV = "MOECLIP_MODEL"


def default_model() -> str:
    """`MOECLIP_MODEL`, else the folder of this file (an exported repository holds the model next to `app.py`)."""
    return os.environ.get(MODEL_ENV) or str(Path(__file__).resolve().parent)


def load_remote_detector(model: str | os.PathLike[str]) -> Any:
    """The zero-shot-anomaly-detection pipeline of a repository folder or Hub id, from its own remote code."""
    from transformers import pipeline

    return pipeline(TASK, model=str(model), trust_remote_code=True)


def create_app(model: str | os.PathLike[str] | None = None):
    """The Gradio Blocks of the Space for `model` (default: `default_model()`), without a routing tab."""
    model = model if model is not None else default_model()
    return build_demo(load_remote_detector(model), model_name=str(model))


__all__ = ["MODEL_ENV", "create_app", "default_model", "load_remote_detector"]

if __name__ == "__main__":
    launch_demo(create_app())
