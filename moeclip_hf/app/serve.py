"""`moeclip serve`: the web app on a saved model, with the installed package (extra: `pip install "moeclip-hf[app]"`).

The page has three tabs (`moeclip_hf.app.ui`):

- **Detect**: upload an image (or pick an example), name its class (suggestions: the benchmarks' class
  descriptions; free text works too), see the anomaly score, the verdict at an adjustable threshold, the
  heat-map overlay (as `moeclip detect` draws it) and the raw map;
- **Routing**: the routing maps and per-layer anomaly maps of `moeclip explain` for the same image;
- **Batch**: several images of one class, a table sorted by score and their overlays.

The model is loaded once and every request runs through the package's zero-shot-anomaly-detection pipeline.
The Space of an exported repository (`moeclip_hf.app.space`) is the same page on the repository's remote code.
This module's top level imports neither gradio nor torch, so that `moeclip --help` stays fast.

```python
>>> from moeclip_hf.app.serve import build_app, launch  # doctest: +SKIP
>>> launch(build_app("path/to/model"), host="127.0.0.1", port=7860)  # doctest: +SKIP

```
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from PIL import Image

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: What `moeclip serve` says when gradio is missing.
MISSING_GRADIO = 'moeclip serve needs the app extra: pip install "moeclip-hf[app]" (gradio is not installed).'
#: Synthetic example images shown under the Detect tab: (category, defect, class name typed for it, seed).
EXAMPLES = (
    ("hex_nut", "scratch", "hex nut", 3),
    ("checkers", "hole", "checkered tiles", 1),
    ("tablet", None, "round white tablet", 2),
)
EXAMPLE_SIZE = 256


def load_detector(model: Any) -> Any:
    """The package's pipeline for a model folder or Hub id (loaded once); a pipeline is returned as it is.

    The package's own pipeline class is used even for an exported folder whose config names remote code,
    so no downloaded code runs.
    """
    if callable(model) and hasattr(model, "model"):
        return model
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    from transformers import pipeline

    from ..inference.pipeline import ZeroShotAnomalyDetectionPipeline
    from ..inference.registration import register
    from ..inference.task import TASK

    path = os.fspath(model)
    if not Path(path).exists():
        try:
            validate_repo_id(path)
        except HFValidationError:
            raise FileNotFoundError(f"model not found: {path} is neither a folder nor a Hub id") from None
    register()
    return pipeline(TASK, model=path, pipeline_class=ZeroShotAnomalyDetectionPipeline)


def explain_routing(detector: Any, image: Image.Image, class_name: str, output_dir: Path) -> tuple[list, str]:
    """`moeclip explain` on one image into `output_dir`: its figures (routing per MoE layer, then the anomaly
    maps per layer and scale) as `(PIL image, caption)` pairs, and the report's Markdown."""
    from ..analysis import explain_image

    report = explain_image(detector.model, detector.processor, image, class_name, output_dir)
    captions = {
        path: f"patch routing, MoE layer {int(path.stem.removeprefix('routing_layer'))}"
        for path in sorted(output_dir.glob("routing_layer*.png"))
    }
    captions[output_dir / "anomaly_maps.png"] = "anomaly maps per feature layer and scale"
    figures = []
    for path, caption in captions.items():
        if path.is_file():
            with Image.open(path) as figure:
                figures.append((figure.convert("RGB"), caption))
    return figures, report.read_text(encoding="utf-8")


def write_examples(folder: Path) -> list[tuple[str, str]]:
    """Render the synthetic example images into `folder` (inside the app's temporary folder)."""
    from ..data.synthetic import render

    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for category, defect, class_name, seed in EXAMPLES:
        path = folder / f"{category}_{defect or 'good'}.png"
        Image.fromarray(render(category, defect, image_size=EXAMPLE_SIZE, seed=seed).image).save(path)
        examples.append((str(path), class_name))
    return examples


def build_app(model_path_or_pipeline: Any, examples: bool = True):
    """The Gradio Blocks of the app (three tabs; see the module docstring) around one loaded model.

    The app's temporary folder is `app.moeclip_workspace` (`GRADIO_TEMP_DIR` points there: one app per
    process). Serve it with [`launch`]; `moeclip_hf.app.ui.close_demo` stops it and deletes the folder.
    """
    from .ui import build_demo

    detector = load_detector(model_path_or_pipeline)
    name = None if callable(model_path_or_pipeline) else os.fspath(model_path_or_pipeline)
    return build_demo(
        detector,
        explain_fn=explain_routing,
        examples_fn=write_examples if examples else None,
        model_name=name,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def launch(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs) -> Any:
    """Serve an app from [`build_app`] on `host:port`; returns it.

    Blocks until interrupted unless `prevent_thread_lock=True` is passed. Never creates a share link.
    Binding to a non-loopback address exposes the app to the network; a notice says so.
    """
    from .ui import launch_demo

    if not is_loopback(host):
        print(f"moeclip serve: listening on {host}, reachable from other machines.", file=sys.stderr)
    launch_demo(app, host=host, port=port, **kwargs)
    return app


def add_serve_parser(subparsers) -> None:
    """`moeclip serve --model PATH [--host 127.0.0.1] [--port 7860] [--no-examples]`."""
    parser = subparsers.add_parser(
        "serve",
        help="a web app: score, verdict, overlay and routing maps of uploaded images",
        description="Serve a Gradio app on the model: upload an image, name its class, see the anomaly score, "
        "the verdict at an adjustable threshold, the heat-map overlay, the raw map and the routing maps; score "
        'a batch of images. Needs the app extra: pip install "moeclip-hf[app]".',
    )
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST}, this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--no-examples", action="store_true", help="do not render the synthetic example images")
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Load the model once and serve until interrupted (Ctrl-C); 1 with a message when gradio is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Looked up, not imported: gradio reads GRADIO_TEMP_DIR at import, and the app's folder does not exist yet.
    if importlib.util.find_spec("gradio") is None:
        print(f"moeclip: error: {MISSING_GRADIO}", file=sys.stderr)
        return 1
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535; got {args.port}")
    from .ui import close_demo

    demo = build_app(args.model, examples=not args.no_examples)
    try:
        launch(demo, host=args.host, port=args.port)
    except KeyboardInterrupt:  # Ctrl-C before Gradio's own wait loop, which handles it itself
        pass
    finally:
        close_demo(demo)
    return 0


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXAMPLES",
    "MISSING_GRADIO",
    "add_serve_parser",
    "build_app",
    "explain_routing",
    "is_loopback",
    "launch",
    "load_detector",
    "run_serve",
    "write_examples",
]
