"""`moeclip serve --model PATH [--host 127.0.0.1] [--port 7860]`: the command of the web app (`moeclip_hf.app`).

Kept apart from the app so that building the command line imports neither gradio nor the app.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: What `moeclip serve` says when gradio is missing.
MISSING_GRADIO = 'moeclip serve needs the app extra: pip install "moeclip-hf[app]" (gradio is not installed).'


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
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"moeclip: error: {MISSING_GRADIO}", file=sys.stderr)
        return 1
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535; got {args.port}")
    from .app import serve as web

    demo = web.build_app(args.model, examples=not args.no_examples)
    try:
        web.launch(demo, host=args.host, port=args.port)
    except KeyboardInterrupt:  # Ctrl-C before Gradio's own wait loop, which handles it itself
        pass
    finally:
        web.close_demo(demo)
    return 0


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MISSING_GRADIO", "add_serve_parser", "run_serve"]
