"""The training command's arguments: three dataclasses parsed by `transformers.HfArgumentParser`.

Every field is a command-line flag (`--max-steps` or `--max_steps`), a key of a YAML or JSON argument file
given as the single argument (`python train.py run.yaml`), and a key of the `training_args.json` that a run
writes into its output folder, which is itself a valid argument file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers import HfArgumentParser

from ..data.layouts import list_benchmarks

#: The `--clip` value that selects the tiny offline CLIP of `moeclip_hf.presets` (tests and the demo).
TINY_CLIP = "tiny"
#: The `--dataset` value that generates the procedural benchmark of `moeclip_hf.data.synthetic`.
SYNTHETIC_DATASET = "synthetic"
#: Fields that say how to start a run, not what the run is: they may differ when an output folder is reused.
RUN_CONTROL_FIELDS = ("resume", "overwrite")
#: The argument-file suffixes `parse_args` recognises when a single argument is given.
ARGUMENT_FILE_SUFFIXES = (".json", ".yaml", ".yml")
#: Adam's learning rate when `--learning-rate` is not given, per `MoECLIPConfig.compatibility` (METHOD.md,
#: "Losses and training"): the paper's, and the released training script's.
LEARNING_RATES = {"paper": 5e-4, "released": 5e-5}


@dataclass
class ModelArguments:
    """Which model to train: a CLIP backbone wrapped fresh, or an existing MoECLIP checkpoint.

    The architecture flags map onto `MoECLIPConfig` fields (and its `moe` dict) when the model is built from
    `--clip`; left unset, the config's defaults (the paper's) apply. They are refused with `--init-from`, whose
    checkpoint fixes the architecture; the loss weights may still be changed there.
    """

    _argument_group_name = "model"

    clip: str = field(
        default="openai/clip-vit-large-patch14-336",
        metadata={
            "help": "CLIP backbone: a transformers CLIP checkpoint folder or Hub id, wrapped by "
            "MoECLIPModel.from_clip; 'tiny' builds the small offline CLIP of moeclip_hf.presets (64 px)."
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Start from this MoECLIP checkpoint folder (model and processor) instead of --clip."},
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Square input size in pixels (default 518; 64 for --clip tiny; fixed by --init-from)."},
    )
    compatibility: Literal["paper", "released"] | None = field(
        default=None,
        metadata={
            "help": "'paper' (default): the paper's method. 'released': train as the authors' released code runs "
            "(MoECLIPConfig(compatibility='released'): exact GELU towers, the trainable text projection, "
            "dot-product image score, the model in eval mode (no ETF, balance loss or LoRA dropout), no colour "
            "jitter, geometric augmentation after normalisation, released prompts) and learning rate 5e-5. "
            "With --init-from, the checkpoint's mode applies."
        },
    )
    no_fofs: bool = field(
        default=False,
        metadata={"help": "Ablation: trainable Kaiming-uniform LoRA A matrices instead of the frozen FOFS ones."},
    )
    num_experts: int | None = field(default=None, metadata={"help": "LoRA experts per MoE layer (default 4)."})
    top_k: int | None = field(default=None, metadata={"help": "Experts each token is routed to (default 2)."})
    moe_layers: list[int] | None = field(
        default=None, metadata={"help": "1-based encoder layers whose output the MoE rewrites (default 6 12 18 24)."}
    )
    residual_weight: float | None = field(
        default=None, metadata={"help": "lambda of Eq. 5, the weight of the expert mixture (default 0.1)."}
    )
    feature_layers: list[int] | None = field(
        default=None, metadata={"help": "1-based encoder layers whose features feed the heads (default 6 12 18 24)."}
    )
    paa_scales: list[int] | None = field(
        default=None, metadata={"help": "Odd window sizes of the patch aggregation, Eq. 10 (default 1 3 5)."}
    )
    image_head: Literal["adapter", "linear"] | None = field(
        default=None,
        metadata={"help": "Image head: the depth-wise adapter of Eq. 13 or, as an ablation, a linear map."},
    )
    trainable_text_projection: bool = field(
        default=False,
        metadata={
            "help": "Released-code variant: a trainable linear + LeakyReLU on the text tower's EOT states, "
            "replacing CLIP's text projection."
        },
    )
    segmentation_leaky_relu: bool = field(
        default=False, metadata={"help": "Released-code variant: a LeakyReLU after each segmentation projection."}
    )
    etf_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the ETF loss, Eq. 16 (default 0.01; 0 disables it)."}
    )
    balance_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the load-balance loss, Eq. 16 (default 0.01; 0 disables it)."}
    )

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size <= 0:
            raise ValueError(f"--image-size must be positive; got {self.image_size}.")
        for name in ("etf_loss_weight", "balance_loss_weight"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be non-negative; got {value}.")
        if self.init_from is not None:
            given = [name for name, value in self.architecture_overrides().items() if value not in (None, False)]
            if given:
                flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
                raise ValueError(f"--init-from fixes the architecture; drop {flags} or build from --clip instead.")

    def architecture_overrides(self) -> dict[str, Any]:
        """The architecture flags as given (unset ones are None or False)."""
        names = (
            "image_size",
            "compatibility",
            "no_fofs",
            "num_experts",
            "top_k",
            "moe_layers",
            "residual_weight",
            "feature_layers",
            "paa_scales",
            "image_head",
            "trainable_text_projection",
            "segmentation_leaky_relu",
        )
        return {name: getattr(self, name) for name in names}

    def config_overrides(self) -> dict[str, Any]:
        """`MoECLIPConfig` keyword arguments for the flags that were set; `moe_config` holds only the set MoE fields."""
        moe = {
            "num_experts": self.num_experts,
            "top_k": self.top_k,
            "layers": self.moe_layers,
            "residual_weight": self.residual_weight,
            "use_fofs": False if self.no_fofs else None,
        }
        overrides = {
            "compatibility": self.compatibility,
            "feature_layers": self.feature_layers,
            "paa_scales": self.paa_scales,
            "image_head": self.image_head,
            "trainable_text_projection": self.trainable_text_projection or None,
            "segmentation_leaky_relu": self.segmentation_leaky_relu or None,
            **self.loss_weight_overrides(),
        }
        overrides = {name: value for name, value in overrides.items() if value is not None}
        moe = {name: value for name, value in moe.items() if value is not None}
        if moe:
            overrides["moe_config"] = moe
        return overrides

    def loss_weight_overrides(self) -> dict[str, float]:
        """The auxiliary loss weights that were set: they apply to a `--init-from` checkpoint too."""
        weights = {"etf_loss_weight": self.etf_loss_weight, "balance_loss_weight": self.balance_loss_weight}
        return {name: value for name, value in weights.items() if value is not None}


@dataclass
class DataArguments:
    """Which images to train on: a benchmark split read by `moeclip_hf.data.load_benchmark`, or synthetic data."""

    _argument_group_name = "data"

    dataset: str = field(
        default="visa",
        metadata={
            "help": "Benchmark of --data-root (mvtec, visa, btad, rsdd, dtd, the BMAD sets, ..., jsonl), or "
            "'synthetic' to generate the procedural benchmark and train on its seen categories. Zero-shot "
            "training uses an auxiliary dataset: VisA, or MVTec-AD when VisA is the target."
        },
    )
    data_root: str | None = field(
        default=None,
        metadata={
            "help": "The benchmark's root folder; with --dataset synthetic, where to generate it "
            "(default <output-dir>/synthetic)."
        },
    )
    classes: list[str] | None = field(default=None, metadata={"help": "Train on these classes only (default all)."})
    split: str = field(
        default="test",
        metadata={"help": "Split to train on; zero-shot training uses the auxiliary set's test split."},
    )
    meta_file: str | None = field(
        default=None,
        metadata={"help": "JSON-lines file of the 'jsonl' layout (default <data-root>/meta.jsonl)."},
    )
    augment: bool = field(
        default=True,
        metadata={
            "help": "Training augmentation (rotation, translation, flips, colour jitter), drawn per (seed, epoch, "
            "sample) so that a resumed run repeats it."
        },
    )
    num_workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes (0 loads in the training process)."}
    )
    synthetic_images_per_category: int = field(
        default=16, metadata={"help": "--dataset synthetic: images per category, half of them anomalous."}
    )
    synthetic_image_size: int = field(
        default=128, metadata={"help": "--dataset synthetic: side of the generated images in pixels."}
    )

    def __post_init__(self) -> None:
        known = [*list_benchmarks(), SYNTHETIC_DATASET]
        if self.dataset.lower() not in known:
            raise ValueError(f"--dataset {self.dataset!r} is unknown; expected one of {known}.")
        self.dataset = self.dataset.lower()
        if self.dataset != SYNTHETIC_DATASET and self.data_root is None:
            raise ValueError(f"--dataset {self.dataset} needs --data-root, the benchmark's root folder.")
        if self.classes is not None and not self.classes:
            raise ValueError("--classes needs at least one class name.")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must be non-negative; got {self.num_workers}.")

    @property
    def is_synthetic(self) -> bool:
        return self.dataset == SYNTHETIC_DATASET


@dataclass
class TrainingArguments:
    """How to train: optimisation (METHOD.md: Adam, lr 5e-4, betas (0.5, 0.999), MultiStepLR), checkpoints,
    precision and logging. (Not `transformers.TrainingArguments`: MoECLIP trains with its own Accelerate loop.)"""

    _argument_group_name = "training"

    output_dir: str = field(
        metadata={
            "help": "Run folder: training_args.json, checkpoints/step-NNNNNNNN/, final/ (the trained model and "
            "processor), logs/."
        }
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Start over in an output folder that holds a run (deletes its checkpoints and model)."},
    )
    resume: bool = field(
        default=False,
        metadata={"help": "Continue from the newest complete checkpoint in the output folder (fresh start if none)."},
    )
    seed: int = field(
        default=42, metadata={"help": "Seed of the model's initialisation, the data order, augmentation and dropout."}
    )
    epochs: int = field(default=20, metadata={"help": "Passes over the training data."})
    max_steps: int | None = field(
        default=None, metadata={"help": "Stop after this many optimiser steps (overrides --epochs)."}
    )
    batch_size: int = field(default=2, metadata={"help": "Images per process and forward pass."})
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Forward passes per optimiser step (effective batch: batch size x this x processes)."},
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Adam learning rate (default: the model's compatibility mode's, LEARNING_RATES: 5e-4 the "
            "paper's, 5e-5 the released script's)."
        },
    )
    adam_beta1: float = field(default=0.5, metadata={"help": "Adam beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "Adam beta2."})
    lr_milestones: list[int] = field(
        default_factory=lambda: [16000, 32000],
        metadata={"help": "Optimiser steps at which the learning rate is multiplied by --lr-gamma (MultiStepLR)."},
    )
    lr_gamma: float = field(default=0.5, metadata={"help": "Learning-rate factor at each milestone."})
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "Clip the gradient norm to this value; 0 disables (the paper does not clip)."}
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = field(
        default="no", metadata={"help": "Autocast precision of the forward pass (Accelerate)."}
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute the CLIP encoder layers in the backward pass instead of storing activations."},
    )
    save_steps: int = field(
        default=1000, metadata={"help": "Save a checkpoint every this many optimiser steps (0: only at the end)."}
    )
    save_total_limit: int | None = field(
        default=None, metadata={"help": "Keep only this many newest checkpoints (default: keep all)."}
    )
    logging_steps: int = field(
        default=10, metadata={"help": "Log the loss parts and learning rate every this many optimiser steps."}
    )
    disable_tqdm: bool = field(default=False, metadata={"help": "No progress bar (logs still go to the trackers)."})
    report_to: list[str] = field(
        default_factory=lambda: ["auto"],
        metadata={
            "help": "Accelerate trackers to log to (tensorboard, wandb, ...); 'auto': TensorBoard when installed; "
            "'none': no tracker."
        },
    )

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "logging_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be at least 1; got {self.max_steps}.")
        if self.save_steps < 0:
            raise ValueError(f"--save-steps must be non-negative; got {self.save_steps}.")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"--save-total-limit must be at least 1; got {self.save_total_limit}.")
        if self.seed < 0:
            raise ValueError(f"--seed must be non-negative; got {self.seed}.")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"--learning-rate must be positive; got {self.learning_rate}.")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must lie in [0, 1); got {getattr(self, name)}.")
        if self.lr_gamma <= 0:
            raise ValueError(f"--lr-gamma must be positive; got {self.lr_gamma}.")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(step < 1 for step in self.lr_milestones):
            raise ValueError(f"--lr-milestones must be increasing positive steps; got {self.lr_milestones}.")
        if self.max_grad_norm < 0:
            raise ValueError(f"--max-grad-norm must be non-negative; got {self.max_grad_norm}.")
        if self.overwrite and self.resume:
            raise ValueError("--overwrite starts over and --resume continues: pass one of them.")

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)


ArgumentTuple = tuple[ModelArguments, DataArguments, TrainingArguments]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default, except None (the help says what unset means) and that of `--no-*` switches."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action, argparse._StoreFalseAction):
            return action.help
        return super()._get_help_string(action)


def argument_parser() -> HfArgumentParser:
    """The parser of `train.py`, with a description that `--help` shows above the options."""
    return HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments),
        prog="train.py",
        formatter_class=_HelpFormatter,
        description=(
            "Train MoECLIP (MoE-LoRA experts in a frozen CLIP, anomaly heads) for zero-shot anomaly detection. "
            "Run it with `python`, `accelerate launch` or `torchrun`; pass flags, or one YAML/JSON file whose keys "
            "are the flag names with underscores. The trained model is written to <output-dir>/final/."
        ),
    )


def parse_args(argv: Sequence[str] | None = None) -> ArgumentTuple:
    """Parse command-line flags, or a single `.json`/`.yaml`/`.yml` argument file (keys = field names)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argument_parser()
    if len(argv) == 1 and argv[0].lower().endswith(ARGUMENT_FILE_SUFFIXES):
        path = os.path.abspath(argv[0])
        if path.lower().endswith(".json"):
            return parser.parse_json_file(path)
        return parser.parse_yaml_file(path)
    return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)


def arguments_to_dict(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> dict[str, Any]:
    """All arguments as one flat, JSON-friendly dict: the content of `training_args.json`."""
    return {**asdict(model_args), **asdict(data_args), **asdict(training_args)}


def differing_fields(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the run-defining fields whose values differ between two argument dicts."""
    names = (set(saved) | set(current)) - set(RUN_CONTROL_FIELDS)
    return sorted(name for name in names if saved.get(name) != current.get(name))


__all__ = [
    "ArgumentTuple",
    "DataArguments",
    "LEARNING_RATES",
    "ModelArguments",
    "RUN_CONTROL_FIELDS",
    "SYNTHETIC_DATASET",
    "TINY_CLIP",
    "TrainingArguments",
    "argument_parser",
    "arguments_to_dict",
    "differing_fields",
    "parse_args",
]
