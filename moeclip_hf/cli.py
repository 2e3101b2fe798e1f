"""The `moeclip` command: `moeclip detect | evaluate | demo | export ...`; `moeclip COMMAND --help` for each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DESCRIPTION = """\
MoECLIP zero-shot anomaly detection (CVPR 2026) on transformers.

A frozen CLIP ViT whose image patches are routed to specialised LoRA experts finds defects and
lesions in categories it was never trained on: name the class in free text and get an anomaly
score and map per image.
"""

EPILOG = """\
examples:
  moeclip demo                                      train + evaluate a tiny model on synthetic data, offline
  moeclip detect --model DIR part.png --class-name "metal nut" --output out/
  moeclip evaluate --model DIR --dataset mvtec --data-root /data/mvtec --output results/
"""


def add_detect_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="score images and write overlay pictures",
        description="Score each image, print the verdict, and write an overlay PNG (heat map and threshold contour).",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, BMP, TIFF, ...)")
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument("--class-name", required=True, help='what the images show, in free text ("bottle", "brain scan")')
    parser.add_argument("--threshold", type=float, default=None, help="score threshold (default: the model's)")
    parser.add_argument("--domain", choices=("industrial", "medical"), default=None, help="blur and score fusion (default: the model's)")
    parser.add_argument("--output", type=Path, default=Path("moeclip-detect"), help="folder for the overlay PNGs")
    parser.set_defaults(run=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    from .detection import detect_images

    results = detect_images(
        args.model, args.images, args.class_name, output_dir=args.output, threshold=args.threshold, domain=args.domain
    )
    width = max(len(str(result.path)) for result in results)
    for result in results:
        verdict = "ANOMALOUS" if result.is_anomalous else "normal"
        print(f"{str(result.path):<{width}}  score {result.score:.4f}  {verdict:<9}  -> {result.overlay_path}")
    return 0


PARSERS: list[Callable] = [add_detect_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moeclip", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"moeclip-hf {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_parser in PARSERS:
        add_parser(subparsers)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"moeclip: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
