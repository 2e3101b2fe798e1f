"""The `moeclip` command: `moeclip detect | evaluate | demo | export ...`; `moeclip COMMAND --help` for each.

Building the parser imports only light modules (no torch, transformers, datasets or gradio), so `--help`
answers at once; each command imports what it needs when it runs.

The module is near 500 lines because it holds one small parser and one runner per command: they are kept
together so that `moeclip --help` reads a single light module; each runner only hands over to the package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .app.serve import add_serve_parser
from .benchmarks import DOMAINS
from .data.layouts import list_benchmarks
from .data.synthetic import CATEGORIES
from .demo import settings as demo
from .evaluation import PROTOCOLS
from .inference.table_command import add_table_arguments, check_overlay_run, run_table, wants_table

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
  moeclip detect --model DIR /data/today --class-name "metal nut" --output today.csv [--resume]
  moeclip data check --dataset mvtec --data-root /data/mvtec      counts, masks and problems, before a long run
  moeclip evaluate --model DIR --dataset mvtec --data-root /data/mvtec --output results/
  moeclip explain --model DIR part.png --class-name "metal nut" --output explain/
  moeclip export --model DIR --output hub-folder/
  moeclip convert-released --checkpoint moe_epoch_20.pth --clip ViT-L-14-336px.pt --output DIR
  moeclip export-released DIR --output moe_epoch.pth
  moeclip serve --model DIR                         web app on http://127.0.0.1:7860 (pip install "moeclip-hf[app]")
"""


def add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train and evaluate a small model on generated data, offline",
        description="Generate a procedural benchmark (seen and unseen categories), evaluate the embedded small "
        "model, train it on the seen categories with the train.py code, evaluate again with the moeclip evaluate "
        "code, and write metrics.json, tables, overlays and report.md. Its backbone is not pretrained.",
    )
    defaults = demo.DemoSettings
    parser.add_argument(
        "--output", type=Path, default=defaults.output_dir, help="folder for data, model and report (default %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps (default %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the data, the model's weights and training (default %(default)s)"
    )
    parser.add_argument(
        "--images-per-category", type=int, default=defaults.images_per_category,
        help="generated images per category and split (default %(default)s)",
    )
    parser.add_argument(
        "--seen", nargs="+", choices=CATEGORIES, default=list(demo.SEEN), metavar="CATEGORY",
        help=f"categories to train on, the others are unseen (default: {' '.join(demo.SEEN)}; any of {', '.join(CATEGORIES)})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    unseen = tuple(name for name in CATEGORIES if name not in args.seen)
    if not unseen:
        raise ValueError("--seen must leave at least one category unseen.")
    settings = demo.DemoSettings(
        output_dir=args.output, steps=args.steps, seed=args.seed, images_per_category=args.images_per_category,
        seen=tuple(args.seen), unseen=unseen, progress=not args.quiet,
    )
    from .demo.run import run_demo as run

    result = run(settings)
    per_class = [f"Per class after training, {split}:\n\n{result.results[split]['after'].to_markdown()}" for split in demo.SPLITS]
    print("\n" + "\n\n".join([demo.metrics_table(result.metrics), *per_class, demo.LIMITATION]))
    print(f"\nreport: {result.report_path}\ntrained model: {result.model_path}")
    return 0


def add_detect_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="score images: overlay pictures, or a resumable table for many images",
        description="Score each image, print the verdict, and write an overlay PNG (heat map and threshold contour). "
        "With --output results.csv (or .jsonl), score many images into a table instead (see below).",
    )
    parser.add_argument("images", nargs="*", type=Path, help="image files (PNG, JPEG, BMP, TIFF, ...); for a table also "
                        "folders, quoted glob patterns ('parts/**/*.png') and .txt lists of paths")
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument("--class-name", required=True, help='what the images show, in free text ("bottle", "brain scan")')
    parser.add_argument("--threshold", type=float, default=None, help="score threshold (default: the model's)")
    parser.add_argument("--domain", choices=DOMAINS, default=None, help="blur and score fusion (default: the model's)")
    parser.add_argument("--output", type=Path, default=Path("moeclip-detect"), help="folder for the overlay PNGs, "
                        "or a result table results.csv / results.jsonl (both are written)")
    add_table_arguments(parser)
    parser.set_defaults(run=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    from .inference.detection import detect_images

    if wants_table(args):
        return run_table(args)
    check_overlay_run(args)
    results = detect_images(
        args.model, args.images, args.class_name, output_dir=args.output, threshold=args.threshold, domain=args.domain
    )
    width = max(len(str(result.path)) for result in results)
    for result in results:
        verdict = "ANOMALOUS" if result.is_anomalous else "normal"
        print(f"{str(result.path):<{width}}  score {result.score:.4f}  {verdict:<9}  -> {result.overlay_path}")
    return 0


def add_evaluate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="per-class image and pixel AUROC / AP / AUPRO / F1-max tables",
        description="Run a model over benchmark datasets and print per-class tables (Markdown) with the mean row "
        "and, when the classes are exactly MVTec-AD's or VisA's, the paper's figures; write results.json, results.md and "
        "one CSV per dataset. Each class is scored with its rows' description (prompts) and domain (blur, fusion). "
        "Under `accelerate launch -m moeclip_hf.cli evaluate ...` or `torchrun ... -m moeclip_hf.cli evaluate ...` "
        "the processes share the images and the main one writes the same tables as a single process would.",
    )
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument("--dataset", required=True, nargs="+", choices=list_benchmarks(), help="benchmark(s); "
                        "`moeclip data list` shows each with its layouts")
    parser.add_argument("--data-root", required=True, nargs="+", type=Path, help="one root per dataset (or one for all)")
    parser.add_argument("--meta-file", help="for --dataset jsonl: the JSON-lines file (a released full-shot.jsonl "
                        "works as it is)")
    parser.add_argument("--keep-folders", action="store_true", help=KEEP_FOLDERS_HELP)
    parser.add_argument("--classes", nargs="+", help="only these classes")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="moeclip", help="moeclip: the released benchmark "
                        "protocol (per-class min-max); probability: the single-image maps (default: %(default)s)")
    parser.add_argument("--compatibility", choices=("paper", "released"), default=None,
                        help="evaluate as the paper (cosine image score, METHOD.md's prompts, per-class min-max) or as "
                        "the released test.py (dot-product image score, its prompts verbatim, min-max only outside "
                        "[0, 1]); default: the model's own mode (a converted released model is in 'released')")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available; under a "
                        "launcher, each process's own GPU)")
    parser.add_argument("--output", type=Path, default=Path("moeclip-results"), help="folder for the tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from .data.loading import load_benchmark
    from .distributed import launched_processes, model_fingerprint, require_agreement
    from .evaluation.runner import evaluate_dataset, write_results

    roots = args.data_root if len(args.data_root) == len(args.dataset) else args.data_root * len(args.dataset)
    if len(roots) != len(args.dataset):
        raise ValueError("--data-root takes one folder, or one per --dataset")
    processes = launched_processes(args.device)
    model, processor = _load_model(args.model)
    if args.compatibility is not None:
        model.config.apply_evaluation_compatibility(args.compatibility)
    if processes.num_processes > 1:
        require_agreement(processes, {"model (config and weights)": model_fingerprint(model)})
    model.to(processes.device)
    results = []
    for name, root in zip(args.dataset, roots):
        dataset = load_benchmark(
            name, root, classes=args.classes, image_size=model.config.image_size, meta_file=args.meta_file,
            keep_folders=args.keep_folders,
        )
        if not args.quiet and processes.is_main:
            print(dataset.info.description, file=sys.stderr)
        result = evaluate_dataset(
            model, processor, dataset, name, protocol=args.protocol, batch_size=args.batch_size,
            num_workers=args.num_workers, progress=not args.quiet, processes=processes,
        )
        if result is not None:  # the main process
            print(f"\n## {name} ({args.protocol} protocol)\n\n{result.to_markdown()}")
            results.append(result)
    if processes.is_main:
        paths = write_results(results, args.output, model_name=str(args.model))
        print("\nwritten: " + ", ".join(str(path) for path in paths.values()))
    return 0


KEEP_FOLDERS_HELP = (
    "read every class folder as its own class (DTD-Synthetic: its 12 folders; default: the released "
    "protocol's 8 classes, the five Woven folders pooled)"
)


def add_data_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="check a benchmark folder, list the benchmarks",
        description="Look at benchmark data before a long run: what a folder holds, and what each benchmark is.",
    )
    commands = parser.add_subparsers(title="data commands", metavar="DATA_COMMAND")
    check = commands.add_parser(
        "check",
        help="counts per class, masks, expected counts and problems of a benchmark folder",
        description="Find the folder's layout as `moeclip evaluate` does, count the normal and anomalous images "
        "and the masks of each class, compare with a complete copy's counts where the benchmark is known, open "
        "every file header, and list the problems found. Exit status 1 when something is wrong.",
    )
    check.add_argument("--dataset", required=True, choices=list_benchmarks(), help="the benchmark")
    check.add_argument("--data-root", required=True, type=Path, help="its root folder (or the download folder)")
    check.add_argument("--meta-file", help="for --dataset jsonl: the JSON-lines file")
    check.add_argument("--split", default="test")
    check.add_argument("--keep-folders", action="store_true", help=KEEP_FOLDERS_HELP)
    check.add_argument("--format", choices=("markdown", "json"), default="markdown", help="(default %(default)s)")
    check.add_argument("--max-problems", type=int, default=10, help="problems to print (default %(default)s)")
    check.add_argument("--count-only", action="store_true", help="count files without opening their headers "
                       "(faster on a slow disk; unreadable files and mask sizes go unchecked)")
    check.set_defaults(run=run_data_check)
    listing = commands.add_parser(
        "list",
        help="every benchmark: domain, classes, test counts, layouts and their sources",
        description="The benchmarks table: what `--dataset` accepts and how each benchmark's folders are read.",
    )
    listing.add_argument("--sources", action="store_true", help="also print each layout's source")
    listing.set_defaults(run=run_data_list)

    def print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(run=print_help)


def run_data_check(args: argparse.Namespace) -> int:
    import json

    from .data.check import check_dataset

    report = check_dataset(
        args.dataset, args.data_root, split=args.split, meta_file=args.meta_file, keep_folders=args.keep_folders,
        open_files=not args.count_only,
    )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.to_markdown(max_problems=args.max_problems))
    return 0 if report.ok else 1


def run_data_list(args: argparse.Namespace) -> int:
    from .benchmarks import BENCHMARKS
    from .data.layouts import ROUTES

    print("| name | benchmark | domain | classes | test normal / anomalous | in the paper | layouts |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in BENCHMARKS.items():
        counts = entry.expected_counts
        total = "-" if not counts else f"{sum(n for n, _ in counts.values())} / {sum(a for _, a in counts.values())}"
        layouts = ", ".join(convention.__name__ for convention in ROUTES[name])
        print(f"| {name} | {entry.display_name} | {entry.domain} | {len(entry.classes)} | {total} | "
              f"{'yes' if entry.in_paper else 'no'} | {layouts} |")
    if args.sources:
        for name, entry in BENCHMARKS.items():
            print(f"\n{name} ({entry.display_name}):")
            for source in entry.sources:
                print(f"  - {source}")
    return 0


def add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the Hub repository folder (or push it)",
        description="Write what would be pushed to the Hub: safetensors weights, config, processor, model card, "
        "remote code, Inference Endpoints handler.py and requirements.txt. With --push, upload it.",
    )
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder")
    parser.add_argument("--output", type=Path, required=True, help="folder to write")
    parser.add_argument("--results", help="a results JSON (or folder) written by `moeclip evaluate`, for the model card")
    parser.add_argument("--repo-id", help="the Hub repository id the card should name")
    parser.add_argument("--push", action="store_true", help="also upload to --repo-id (needs a Hub token)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from .hub import export_model, push_to_hub

    folder = export_model(args.model, args.output, results=args.results, repo_id=args.repo_id)
    print(f"exported to {folder}")
    if args.push:
        if not args.repo_id:
            raise ValueError("--push needs --repo-id")
        print(push_to_hub(args.model, args.repo_id, results=args.results, private=args.private))
    return 0


def add_convert_released_parser(subparsers) -> None:
    from .conversion.released_defaults import (
        RELEASED_LORA_ALPHA,
        RELEASED_MOE_LAYERS,
        RELEASED_NUM_EXPERTS,
        RELEASED_RANK,
        RELEASED_TOP_K,
    )

    parser = subparsers.add_parser(
        "convert-released",
        help="turn the released MoECLIP code's checkpoint + CLIP file into a model folder",
        description="Convert a checkpoint of the authors' released code (moe_epoch_N.pth) and the CLIP file it was "
        "trained on (OpenAI's ViT-L-14-336px.pt, or an open_clip state dict) into a save_pretrained folder with its "
        "processor, in compatibility mode 'released': its maps and scores are the released code's. Only weights are "
        "read (torch.load with weights_only=True; TorchScript's loader for OpenAI's file); the optimiser state is "
        "ignored.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="the released checkpoint, moe_epoch_N.pth")
    parser.add_argument("--clip", type=Path, required=True, help="the CLIP file it was trained on (.pt/.pth/.bin/.safetensors)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write the model and processor to")
    parser.add_argument("--image-size", type=int, default=518, help="input size; position embeddings are resized once (default %(default)s)")
    parser.add_argument("--tokenizer", help="CLIP's tokenizer: its BPE file (bpe_simple_vocab_16e6.txt.gz, in the released "
                        "code's open_clip folder), a tokenizer folder or a Hub id (default: openai/clip-vit-large-patch14-336, "
                        "else the BPE file of an installed open_clip_torch)")
    parser.add_argument("--moe-layers", type=int, nargs="+", default=list(RELEASED_MOE_LAYERS),
                        help="1-based encoder layers of the MoE, which also feed the heads (default %(default)s)")
    parser.add_argument("--num-experts", type=int, default=RELEASED_NUM_EXPERTS, help="experts per MoE layer (default %(default)s)")
    parser.add_argument("--top-k", type=int, default=RELEASED_TOP_K, help="experts per token (default %(default)s)")
    parser.add_argument("--r", type=int, default=RELEASED_RANK, help="LoRA rank of the experts (default %(default)s)")
    parser.add_argument("--lora-alpha", type=int, default=RELEASED_LORA_ALPHA, help="LoRA alpha (default %(default)s)")
    parser.add_argument("--segmentation-leaky-relu", action="store_true", help="the run used the released LeakyReLU option")
    parser.add_argument("--domain", choices=DOMAINS, default="industrial", help="default blur and score fusion")
    parser.set_defaults(run=run_convert_released)


def run_convert_released(args: argparse.Namespace) -> int:
    from .conversion.released import convert_released

    print(f"converting {args.checkpoint} with {args.clip} at {args.image_size} px ...")
    model, _ = convert_released(
        args.checkpoint,
        args.clip,
        output=args.output,
        image_size=args.image_size,
        tokenizer=args.tokenizer,
        moe_layers=args.moe_layers,
        num_experts=args.num_experts,
        top_k=args.top_k,
        r=args.r,
        lora_alpha=args.lora_alpha,
        segmentation_leaky_relu=args.segmentation_leaky_relu,
        domain=args.domain,
    )
    use_fofs = "frozen FOFS" if model.config.moe_config.use_fofs else "trained (not FOFS)"
    print(f"wrote {args.output}: compatibility 'released', {len(model.config.moe_config.layers)} MoE layers of "
          f"{model.config.moe_config.num_experts} experts, A matrices {use_fofs}, {model.config.image_size} px")
    return 0


def add_export_released_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-released",
        help="write a model's adapters as a released-code checkpoint (moe_epoch.pth)",
        description="Write the adapters of a model in compatibility mode 'released' (converted, or trained with "
        "train.py --compatibility released) as the released code's checkpoint, {epoch, image_adapter, text_adapter}, "
        "for its test.py with the same CLIP weights. No optimiser state is written.",
    )
    parser.add_argument("model", help="a saved MoECLIP model folder")
    parser.add_argument("--output", type=Path, required=True, help="the .pth file to write")
    parser.add_argument("--epoch", type=int, default=0, help="the epoch number stored in the file (default %(default)s)")
    parser.set_defaults(run=run_export_released)


def run_export_released(args: argparse.Namespace) -> int:
    from .conversion.released import export_released
    from .modeling.modeling_moeclip import MoECLIPModel

    print(f"wrote {export_released(MoECLIPModel.from_pretrained(args.model), args.output, args.epoch)}")
    return 0


def add_explain_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="routing maps and per-layer anomaly maps of one image",
        description="For each MoE layer, which patches chose which expert (top-1, top-2) with the mean routing "
        "weight; the anomaly map of every (layer, PAA scale) and the final one; as PNGs and a report.md.",
    )
    parser.add_argument("image", type=Path, help="the image to explain")
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument("--class-name", required=True, help="what the image shows, in free text")
    parser.add_argument("--output", type=Path, default=Path("moeclip-explain"), help="folder for the figures and report")
    parser.add_argument("--domain", choices=DOMAINS, default=None, help="blur and score fusion (default: the model's)")
    parser.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from .analysis import explain_image

    model, processor = _load_model(args.model)
    print(f"report: {explain_image(model, processor, args.image, args.class_name, args.output, domain=args.domain)}")
    return 0


def add_analyze_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="expert utilisation, similarity and patch statistics over a dataset",
        description="Per MoE layer: the share of top-k assignments per expert, the inter-expert cosine similarity, "
        "and the gradient / standard deviation / entropy of the patches each expert wins; PNG, CSV and a report.",
    )
    parser.add_argument("--model", required=True, help="a saved MoECLIP model folder or Hub id")
    parser.add_argument("--dataset", required=True, choices=list_benchmarks(), help="benchmark layout of --data-root")
    parser.add_argument("--data-root", required=True, type=Path, help="the dataset's root folder")
    parser.add_argument("--meta-file", help="for --dataset jsonl: the JSON-lines file")
    parser.add_argument("--classes", nargs="+", help="only these classes")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-images", type=int, help="analyse at most this many images")
    parser.add_argument("--output", type=Path, default=Path("moeclip-analysis"), help="folder for figures and tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze_dataset
    from .data.loading import load_benchmark

    model, processor = _load_model(args.model)
    dataset = load_benchmark(args.dataset, args.data_root, split=args.split, classes=args.classes, meta_file=args.meta_file)
    analyze_dataset(
        model, processor, dataset, args.output, batch_size=args.batch_size, max_images=args.max_images, progress=not args.quiet
    )
    print(f"report: {args.output / 'report.md'}")
    return 0


def _load_model(name_or_path: str):
    from .modeling.modeling_moeclip import MoECLIPModel
    from .modeling.processing_moeclip import MoECLIPProcessor

    return MoECLIPModel.from_pretrained(name_or_path).eval(), MoECLIPProcessor.from_pretrained(name_or_path)


PARSERS: list[Callable] = [
    add_demo_parser,
    add_detect_parser,
    add_evaluate_parser,
    add_data_parser,
    add_explain_parser,
    add_analyze_parser,
    add_export_parser,
    add_convert_released_parser,
    add_export_released_parser,
    add_serve_parser,
]


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
    from .inference.registration import register

    register()  # commands load saved folders through transformers' Auto classes and the pipeline
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"moeclip: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
