"""`moeclip detect ... --output results.csv`: the command-line side of batch inference into a table."""

from __future__ import annotations

import argparse
import glob
import sys

from .table import TABLE_SUFFIXES, UNREADABLE

#: Options that only a table run takes, with their defaults.
TABLE_OPTIONS = {
    "from_dataset": None, "split": None, "image_column": "image", "batch_size": 8, "num_workers": 0,
    "resume": False, "overwrite": False, "no_maps": False, "device": None, "quiet": False,
}  # fmt: skip


def wants_table(args: argparse.Namespace) -> bool:
    """Whether `moeclip detect` was asked for a result table (its --output ends in .csv or .jsonl)."""
    return args.output.suffix.lower() in TABLE_SUFFIXES


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    table = parser.add_argument_group(
        "result table (--output results.csv or results.jsonl)",
        "Many images, batched: one row per image (path, score, verdict, threshold, map_file) in results.csv and "
        "results.jsonl, written as it goes; anomaly maps in results_maps/. Under `accelerate launch -m "
        "moeclip_hf.cli detect ...` or `torchrun ... -m moeclip_hf.cli detect ...` the processes share the "
        "images and the table is merged at the end, rows in input order.",
    )
    table.add_argument("--from-dataset", metavar="DATASET", help="also score the images of a datasets dataset: a "
                       "save_to_disk folder, or what datasets.load_dataset takes")
    table.add_argument("--split", help="the dataset's split, when it has several")
    table.add_argument("--image-column", default=TABLE_OPTIONS["image_column"], help="the dataset's image column "
                       "(images or file paths; default %(default)s)")
    table.add_argument("--batch-size", type=int, default=TABLE_OPTIONS["batch_size"], help="images per forward "
                       "pass (default %(default)s)")
    table.add_argument("--num-workers", type=int, default=TABLE_OPTIONS["num_workers"], help="processes decoding "
                       "images (default %(default)s)")
    table.add_argument("--resume", action="store_true", help="continue a killed run: images already in the table "
                       "are skipped, the scores stay those of an uninterrupted run")
    table.add_argument("--overwrite", action="store_true", help="delete an existing table and start over")
    table.add_argument("--no-maps", action="store_true", help="write no map PNGs (map_file stays empty)")
    table.add_argument("--device", help="torch device (default: cuda when available; under a launcher, each "
                       "process's own GPU)")
    table.add_argument("--quiet", action="store_true", help="no progress bar")


def check_overlay_run(args: argparse.Namespace) -> None:
    """The overlay run (--output a folder) takes image files and none of the table's options: name what needs
    a table instead."""
    from .sources import LIST_SUFFIXES

    given = [name for name, default in TABLE_OPTIONS.items() if getattr(args, name) != default]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags} need a result table: pass --output results.csv (or .jsonl) instead of a folder")
    for image in args.images:
        if image.is_dir() or image.suffix.lower() in LIST_SUFFIXES or glob.has_magic(str(image)):
            raise ValueError(f"{image} is a folder, list or pattern: score its images into a table with --output results.csv")
    if not args.images:
        raise ValueError("give at least one image file (or --output results.csv to score folders, globs or lists)")


def run_table(args: argparse.Namespace) -> int:
    from transformers import pipeline

    from ..distributed import launched_processes, model_fingerprint
    from .registration import register
    from .task import TASK
    from .batch import detect_to_table
    from .sources import collect_images
    from .table import TableFiles

    processes = launched_processes(args.device)
    files = TableFiles(args.output)
    items = collect_images(args.images, args.from_dataset, args.split, args.image_column, exclude=[files.maps])
    register()
    detector = pipeline(TASK, model=str(args.model), batch_size=args.batch_size, device=processes.device)
    options = {"class_name": args.class_name, "threshold": args.threshold, "domain": args.domain}
    options = {name: value for name, value in options.items() if value is not None}
    threshold = args.threshold if args.threshold is not None else float(detector.model.config.anomaly_threshold)
    settings = {"class_name": args.class_name, "domain": args.domain, "threshold": threshold, "backend": "torch"}
    summary = detect_to_table(
        lambda pictures: detector(pictures, **options), items, args.output, settings, model_fingerprint(detector.model),
        batch_size=args.batch_size, num_workers=args.num_workers, resume=args.resume, overwrite=args.overwrite,
        write_maps=not args.no_maps, processes=processes, progress=not args.quiet,
    )
    if processes.is_main:
        scored = sum(summary.images_per_rank)
        per_rank = f" ({', '.join(map(str, summary.images_per_rank))} by process)" if processes.num_processes > 1 else ""
        normal = len(summary.rows) - summary.num_anomalous - summary.num_unreadable
        print(
            f"{len(summary.rows)} images: {summary.num_anomalous} anomalous, {normal} normal, {summary.num_unreadable} "
            f"unreadable; scored now {scored}{per_rank}, already written {summary.already_written}",
            file=sys.stderr,
        )
        unreadable = [row for row in summary.rows if row.verdict == UNREADABLE]
        if unreadable:
            print(f"unreadable images have no score; the error column says why (first: {unreadable[0].error})", file=sys.stderr)
        maps = "" if args.no_maps else f", maps in {files.maps}/"
        print(f"written: {files.csv}, {files.jsonl}{maps}")
    return 0


__all__ = ["TABLE_OPTIONS", "add_table_arguments", "check_overlay_run", "run_table", "wants_table"]
