"""The MoECLIP training loop on Accelerate: setup, the step, logging, checkpoints and exact resumption.

One code path serves `python train.py`, `accelerate launch train.py`, `torchrun --nproc_per_node N train.py`
and the `moeclip demo` command (through `train`). Resuming a run reproduces the uninterrupted run exactly
(same seed, same hardware) because everything random is either restored or a pure function of the seed:

- model weights, Adam moments, the scheduler and the global torch/numpy/python RNGs (MoE dropout) are
  restored by `Accelerator.load_state` (see `checkpointing`);
- the data order of epoch e is a permutation drawn from a generator seeded with (seed, e), and the position
  in the epoch is restored with `Accelerator.skip_first_batches`;
- the augmentation of sample i in epoch e draws from a generator seeded with (seed, e, i), so it depends on
  neither worker processes nor where a run was interrupted;
- the DataLoader has its own generator, so starting an epoch's iterator consumes nothing from the global RNG.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, is_tensorboard_available, set_seed
from datasets import Dataset
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from ..configuration import MoECLIPConfig
from ..data.loading import class_settings, load_benchmark
from ..data.synthetic import generate_splits
from ..data.transforms import ClipPreprocess, JointAugmentation
from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.moe_lora import MoELoraLayer
from ..modeling.processing_moeclip import MoECLIPProcessor, clip_image_processor
from ..modeling.prompts import class_wording
from ..testing import tiny_config, tiny_processor
from .arguments import (
    LEARNING_RATES,
    TINY_CLIP,
    DataArguments,
    ModelArguments,
    TrainingArguments,
    arguments_to_dict,
    differing_fields,
    parse_args,
)
from .checkpointing import (
    CHECKPOINTS_DIR,
    TrainerState,
    checkpoint_folder,
    find_resumable_checkpoint,
    list_checkpoints,
    register_model_state_hooks,
    remove_staging_folders,
    save_checkpoint,
    save_final_model,
)

logger = logging.getLogger(__name__)

TRAINING_ARGS_NAME = "training_args.json"
FINAL_MODEL_DIR = "final"
LOGS_DIR = "logs"
SYNTHETIC_DIR = "synthetic"
#: The benchmark layout the synthetic generator writes, and the split of it that training reads.
SYNTHETIC_LAYOUT, SYNTHETIC_TRAIN_ROOT = "mvtec", "train"
SYNTHETIC_MARKER = "generation.json"
#: Image side of the tiny offline CLIP, and of a full CLIP run (METHOD.md, "Backbone").
TINY_IMAGE_SIZE, DEFAULT_IMAGE_SIZE = 64, 518
#: The parts of the loss that `MoECLIPOutput` carries and that are logged.
LOSS_NAMES = ("loss", "segmentation_loss", "classification_loss", "etf_loss", "balance_loss")


class TrainingConfigurationError(ValueError):
    """A run that cannot start as configured (data, classes, output folder); raised before any training work."""


class TrainingDataError(ValueError):
    """A training sample that cannot be used (an unreadable image, a mask of another size), met during the run.

    The message names the file. Checkpoints written before it are kept, so `--resume` continues the run once
    the file is mended or removed.
    """


@dataclass
class TrainResult:
    """What `train` hands back.

    Args:
        model_path: the trained model and processor (`<output_dir>/final`), for `from_pretrained`.
        checkpoint_path: the last checkpoint, which `--resume` continues from.
        global_step: optimiser steps done, counting those before a resumption.
        loss_history: one entry per logging step: `step`, `epoch`, `lr` and the mean since the previous entry
            of each loss part (`loss`, `segmentation_loss`, `classification_loss`, `etf_loss`, `balance_loss`),
            averaged over processes; the last entry covers the steps after the last full logging interval.
        model, processor: the trained model (in evaluation mode) and its processor, ready for inference.
    """

    model_path: Path
    checkpoint_path: Path
    global_step: int
    loss_history: list[dict[str, float]]
    model: MoECLIPModel
    processor: MoECLIPProcessor


# ------------------------------------------------------------------------------------------ output folder


def check_output_dir(output_dir: Path, arguments: dict[str, Any], training_args: TrainingArguments) -> list[str]:
    """Refuse to mix two runs in one folder, before anything is loaded or written.

    A folder whose `training_args.json` differs from these arguments holds another run; one with the same
    arguments and checkpoints holds this run already. Both need `--resume` or `--overwrite`. Returns the
    arguments that a resumed run changes.
    """
    saved_path = output_dir / TRAINING_ARGS_NAME
    if training_args.overwrite or not saved_path.is_file():
        return []
    differences = differing_fields(json.loads(saved_path.read_text()), arguments)
    if training_args.resume:
        return differences
    if differences:
        raise TrainingConfigurationError(
            f"{output_dir} holds another run: its {TRAINING_ARGS_NAME} differs in {', '.join(differences)}. "
            "Pass --resume to continue it with these arguments, --overwrite to start over, or another --output-dir."
        )
    if list_checkpoints(output_dir / CHECKPOINTS_DIR) or (output_dir / FINAL_MODEL_DIR).exists():
        raise TrainingConfigurationError(
            f"{output_dir} already holds checkpoints of this run: pass --resume to continue it or --overwrite "
            "to start over."
        )
    return []


def initialise_output_dir(output_dir: Path, arguments: dict[str, Any], overwrite: bool) -> None:
    """Clear an overwritten run's artefacts (generated data is kept) and record these arguments."""
    if overwrite:
        for name in (CHECKPOINTS_DIR, FINAL_MODEL_DIR, LOGS_DIR):
            shutil.rmtree(output_dir / name, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_staging_folders(output_dir / CHECKPOINTS_DIR)
    (output_dir / TRAINING_ARGS_NAME).write_text(json.dumps(arguments, indent=2))


# --------------------------------------------------------------------------------------------------- model


def build_model_and_processor(model_args: ModelArguments) -> tuple[MoECLIPModel, MoECLIPProcessor]:
    """The model to train and its processor: from a MoECLIP checkpoint, the tiny offline CLIP, or any CLIP.

    Call `accelerate.utils.set_seed` first: the heads and MoE layers of a fresh model are drawn at random.
    """
    if model_args.init_from is not None:
        model = MoECLIPModel.from_pretrained(model_args.init_from)
        # from_pretrained (transformers 5.24) hands back every parameter trainable: freeze CLIP again.
        model.freeze_clip()
        processor = MoECLIPProcessor.from_pretrained(model_args.init_from)
        for name, value in model_args.loss_weight_overrides().items():
            setattr(model.config, name, value)
        return model, processor
    overrides = model_args.config_overrides()
    if model_args.clip == TINY_CLIP:
        image_size = model_args.image_size or TINY_IMAGE_SIZE
        if "moe" in overrides:
            overrides["moe"] = {**tiny_config().moe, **overrides["moe"]}
        return MoECLIPModel(tiny_config(image_size=image_size, **overrides)), tiny_processor(image_size)
    image_size = model_args.image_size or DEFAULT_IMAGE_SIZE
    model = MoECLIPModel.from_clip(model_args.clip, image_size=image_size, **overrides)
    processor = MoECLIPProcessor(
        image_processor=clip_image_processor(image_size), tokenizer=AutoTokenizer.from_pretrained(model_args.clip)
    )
    return model, processor


def vision_encoder_layers(model: MoECLIPModel) -> list[torch.nn.Module]:
    """The CLIP encoder layers of the vision tower, the wrapped layer in place of each MoE-LoRA wrapper."""
    layers = model.vision_model.encoder.layers
    return [layer.base_layer if isinstance(layer, MoELoraLayer) else layer for layer in layers]


def enable_gradient_checkpointing(model: MoECLIPModel) -> None:
    """Recompute the frozen CLIP encoder layers in the backward pass instead of keeping their activations.

    transformers' activation checkpointing reaches the CLIP layers wrapped by the MoE too (they are still
    `GradientCheckpointingLayer`s); the MoE mixing itself is cheap and stays outside the recomputation. The
    non-reentrant variant is used because the first layers' inputs do not require gradients.
    """
    model.activation_checkpointing_enable({"use_reentrant": False})
    unreached = [index for index, layer in enumerate(vision_encoder_layers(model)) if not layer.gradient_checkpointing]
    if unreached:
        raise RuntimeError(f"activation checkpointing did not reach vision encoder layers {unreached}")


# ---------------------------------------------------------------------------------------------------- data


def derived_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from a tuple of non-negative integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """Shuffles the sample indices with a generator seeded by (seed, epoch) and yields `(epoch, index)` keys.

    The epoch travels with the index so that the dataset can seed each sample's augmentation without
    shared state, which DataLoader workers would not see. Accelerate's `DataLoaderShard.set_epoch` sets the
    epoch; under several processes every one draws the same permutation and takes its share of each batch.
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        for index in torch.randperm(self.num_samples, generator=generator).tolist():
            yield self.epoch, index

    def __len__(self) -> int:
        return self.num_samples


class TrainingSamples(torch.utils.data.Dataset):
    """Benchmark rows (decoded images and masks) as model inputs, augmented as a function of (seed, epoch, index).

    Indexed by the `(epoch, index)` keys of `EpochShuffleSampler`. Preprocessing is that of
    `moeclip_hf.data.transforms.ClipPreprocess`; the augmentation follows the model's config: on [0, 1] pixels
    with colour jitter (the paper), or without jitter on the normalised image with nearest interpolation
    (`color_jitter=False`, `augment_after_normalization=True`: the released code).
    """

    def __init__(
        self,
        rows: Dataset,
        image_size: int,
        augment: bool,
        seed: int,
        color_jitter: bool = True,
        augment_after_normalization: bool = False,
    ) -> None:
        self.rows = rows
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.color_jitter = color_jitter
        self.augment_after_normalization = augment_after_normalization

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        try:
            row = self.rows[index]
            augmentation = None
            if self.augment:
                augmentation = JointAugmentation(
                    color_jitter=self.color_jitter,
                    interpolation="nearest" if self.augment_after_normalization else "bilinear",
                    generator=derived_seed(self.seed, epoch, index),
                )
            preprocess = ClipPreprocess(self.image_size, augmentation, self.augment_after_normalization)
            pixel_values, mask = preprocess(row["image"], row["mask"])
        except ValueError as error:
            raise TrainingDataError(str(error)) from error
        return {"pixel_values": pixel_values, "mask": mask, "label": row["label"], "class_name": row["class_name"]}


@dataclass
class TrainingCollator:
    """Stacks samples into a batch and maps each class name to its row of the class-prompt tables."""

    class_names: Sequence[str]

    def __post_init__(self) -> None:
        self.class_index = {name: index for index, name in enumerate(self.class_names)}

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.stack([sample["pixel_values"] for sample in samples]),
            "masks": torch.stack([sample["mask"] for sample in samples]),
            "labels": torch.tensor([sample["label"] for sample in samples]),
            "class_index": torch.tensor([self.class_index[sample["class_name"]] for sample in samples]),
        }


def ensure_synthetic_data(root: Path, data_args: DataArguments) -> Path:
    """Generate the synthetic benchmark's train/heldout/unseen roots under `root` unless they are there already.

    A marker written after generation records its parameters: a generation that was interrupted or made with
    other parameters is redone. Returns the root of the training (seen) categories.
    """
    parameters = {
        "images_per_category": data_args.synthetic_images_per_category,
        "image_size": data_args.synthetic_image_size,
    }
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file() or json.loads(marker.read_text()) != parameters:
        marker.unlink(missing_ok=True)
        generate_splits(root, overwrite=True, **parameters)
        marker.write_text(json.dumps(parameters))
    return root / SYNTHETIC_TRAIN_ROOT


def load_training_rows(data_args: DataArguments, output_dir: Path, accelerator: Accelerator) -> Dataset:
    """The training split as decoded rows; each row's `description` is its class's prompt wording.

    Raises `TrainingConfigurationError` for a root without images, unknown classes or classes without images.
    """
    if data_args.is_synthetic:
        benchmark = SYNTHETIC_LAYOUT
        with accelerator.main_process_first():
            root = ensure_synthetic_data(Path(data_args.data_root or output_dir / SYNTHETIC_DIR), data_args)
    else:
        benchmark, root = data_args.dataset, Path(data_args.data_root)
    try:
        rows = load_benchmark(
            benchmark, root, split=data_args.split, classes=data_args.classes, meta_file=data_args.meta_file
        )
    except (FileNotFoundError, ValueError) as error:
        message = f"cannot train on --dataset {data_args.dataset} from {root}: {error}"
        raise TrainingConfigurationError(message) from error
    if len(rows) == 0:
        raise TrainingConfigurationError(f"--dataset {data_args.dataset} at {root} has no images of these classes.")
    return rows


def make_dataloader(
    rows: Dataset,
    class_names: Sequence[str],
    config: MoECLIPConfig,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> DataLoader:
    """The (unprepared) training DataLoader: seeded epoch shuffling, per-sample seeded augmentation at the
    model's image size, as its config asks (`color_jitter`, `augment_after_normalization`)."""
    samples = TrainingSamples(
        rows,
        config.image_size,
        data_args.augment,
        training_args.seed,
        color_jitter=config.color_jitter,
        augment_after_normalization=config.augment_after_normalization,
    )
    return DataLoader(
        samples,
        batch_size=training_args.batch_size,
        sampler=EpochShuffleSampler(len(rows), training_args.seed),
        collate_fn=TrainingCollator(class_names),
        num_workers=data_args.num_workers,
        generator=torch.Generator().manual_seed(training_args.seed),
        pin_memory=torch.cuda.is_available(),
    )


# ---------------------------------------------------------------------------------------------------- text


@dataclass
class ClassPrompts:
    """The text side of every training class, computed once before the loop.

    With a frozen text path the final [T_N, T_A] of each class are precomputed (`text_embeds`, (C, 2, e)) and
    a batch looks its rows up. With `trainable_text_projection` the projection must run every step, so the
    batch passes prompt ids instead; their frozen sentence embeddings are in the model's cache already.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    text_embeds: torch.Tensor | None

    @classmethod
    def build(
        cls,
        model: MoECLIPModel,
        processor: MoECLIPProcessor,
        descriptions: Sequence[str],
        device: torch.device,
    ) -> ClassPrompts:
        tokens = processor.tokenize_descriptions(list(descriptions))
        input_ids = tokens["prompt_input_ids"].to(device)
        attention_mask = tokens["prompt_attention_mask"].to(device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            text_embeds = model.encode_prompts(input_ids, attention_mask)
        model.train(was_training)
        frozen = not model.config.trainable_text_projection
        return cls(input_ids, attention_mask, text_embeds if frozen else None)

    def model_inputs(self, class_index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.text_embeds is not None:
            return {"text_embeds": self.text_embeds[class_index]}
        return {
            "prompt_input_ids": self.input_ids[class_index],
            "prompt_attention_mask": self.attention_mask[class_index],
        }


# ----------------------------------------------------------------------------------------------- accelerate


def resolve_trackers(report_to: Sequence[str]) -> list[str]:
    """`--report-to` as Accelerate tracker names: 'auto' is TensorBoard when installed, 'none' is no tracker."""
    names = [name.lower() for name in report_to]
    if names in ([], ["none"]):
        return []
    if names == ["auto"]:
        return ["tensorboard"] if is_tensorboard_available() else []
    return names


def make_accelerator(training_args: TrainingArguments) -> Accelerator:
    """The Accelerator of a run.

    On a machine without an accelerator device it is told so (`cpu=True`), which is what lets Accelerate
    treat `torchrun` processes as a gloo process group, as `accelerate launch --cpu` would. The scheduler is
    stepped by hand after each optimiser update, so its milestones count optimiser steps whatever the number
    of processes.
    """
    output_dir = training_args.output_path
    trackers = resolve_trackers(training_args.report_to)
    return Accelerator(
        cpu=not torch.accelerator.is_available(),
        mixed_precision=training_args.mixed_precision,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / LOGS_DIR)),
        step_scheduler_with_optimizer=False,
    )


def release_accelerator(accelerator: Accelerator) -> None:
    """Close the trackers and forget Accelerate's process-wide state, so that `train` can run again in this
    process with another precision or accumulation (the demo, the tests). The process group is kept."""
    accelerator.end_training()
    accelerator.free_memory()
    AcceleratorState._reset_state()
    GradientState._reset_state()


def tracker_config(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as tracker hyper-parameters, which must be scalars: lists become strings."""
    scalar = (int, float, str, bool)
    return {name: value if isinstance(value, scalar) else str(value) for name, value in arguments.items()}


class LossMeter:
    """Sums the loss parts of the micro-batches since the last log, without synchronising every step."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None
        self.count = 0

    def add(self, parts: torch.Tensor) -> None:
        self.sums = parts if self.sums is None else self.sums + parts
        self.count += 1

    def pop_means(self, accelerator: Accelerator) -> dict[str, float]:
        """The means since the last call, averaged over processes (every process must call this together)."""
        means = accelerator.reduce(self.sums / self.count, reduction="mean")
        self.sums, self.count = None, 0
        return dict(zip(LOSS_NAMES, means.tolist()))


def loss_parts(outputs) -> torch.Tensor:
    """The loss parts of a training forward as one detached vector, in `LOSS_NAMES` order; a part the forward
    did not compute (the auxiliary losses of a model trained in evaluation mode) counts as 0."""
    zero = outputs.loss.new_zeros(())
    return torch.stack([(getattr(outputs, name) if getattr(outputs, name) is not None else zero).detach().float() for name in LOSS_NAMES])


# ---------------------------------------------------------------------------------------------------- train


def resume_state(
    accelerator: Accelerator, checkpoints_dir: Path, fresh: TrainerState
) -> tuple[TrainerState, Path | None]:
    """Load the newest complete checkpoint into the prepared objects; `fresh` when there is none.

    The main process chooses the checkpoint (verifying checksums once) and tells the others.
    """
    choice = [None]
    if accelerator.is_main_process:
        folder = find_resumable_checkpoint(checkpoints_dir)
        choice = [None if folder is None else str(folder)]
        if folder is None:
            logger.warning("--resume: no complete checkpoint in %s; starting from scratch.", checkpoints_dir)
    broadcast_object_list(choice)
    if choice[0] is None:
        return fresh, None
    folder = Path(choice[0])
    accelerator.load_state(str(folder))
    state = TrainerState.load(folder)
    if (state.num_processes, state.batch_size) != (fresh.num_processes, fresh.batch_size):
        logger.warning(
            "Resuming a run of %d process(es) x batch %d with %d x %d: the data order differs from the original.",
            state.num_processes, state.batch_size, fresh.num_processes, fresh.batch_size,
        )
        state.num_processes, state.batch_size = fresh.num_processes, fresh.batch_size
    accelerator.print(f"Resuming from {folder} (step {state.global_step}).")
    return state, folder


def epoch_batches(accelerator: Accelerator, dataloader: DataLoader, state: TrainerState):
    """The batches of the epoch `state` is in, from its position on."""
    dataloader.set_epoch(state.epoch)
    if state.batches_in_epoch == 0:
        return dataloader
    remaining = accelerator.skip_first_batches(dataloader, state.batches_in_epoch)
    remaining.set_epoch(state.epoch)
    return remaining


def train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> TrainResult:
    """Train MoECLIP as configured and write checkpoints and the final model under `training_args.output_dir`.

    Raises `TrainingConfigurationError` before any training work when the data, the classes or the output
    folder do not allow the run.
    """
    output_dir = training_args.output_path
    arguments = arguments_to_dict(model_args, data_args, training_args)
    changed = check_output_dir(output_dir, arguments, training_args)
    accelerator = make_accelerator(training_args)
    if changed and accelerator.is_main_process:
        logger.warning("Resuming %s with changed arguments: %s.", output_dir, ", ".join(changed))
    try:
        return _train(accelerator, model_args, data_args, training_args, arguments)
    finally:
        release_accelerator(accelerator)


@dataclass
class PreparedRun:
    """The objects of a run once Accelerate has prepared them."""

    model: torch.nn.Module
    processor: MoECLIPProcessor
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataloader: DataLoader
    prompts: ClassPrompts
    parameters: list[torch.nn.Parameter]


def prepare_run(
    accelerator: Accelerator,
    rows: Dataset,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> PreparedRun:
    """Build the model (seeded), data, Adam over the trainable parameters only and MultiStepLR; prepare them."""
    set_seed(training_args.seed)
    model, processor = build_model_and_processor(model_args)
    if training_args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    # The released code trains in evaluation mode throughout: no ETF or balance loss, no LoRA dropout.
    model.train(not model.config.train_in_eval_mode)
    class_names = sorted(rows.unique("class_name"))
    settings = class_settings(rows)
    descriptions = [class_wording(name, settings[name][0], model.config.class_descriptions) for name in class_names]
    dataloader = make_dataloader(rows, class_names, model.config, data_args, training_args)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    learning_rate = training_args.learning_rate or LEARNING_RATES[model.config.compatibility]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate, betas=(training_args.adam_beta1, training_args.adam_beta2))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, training_args.lr_milestones, training_args.lr_gamma)
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    register_model_state_hooks(accelerator, processor)
    device = accelerator.device
    prompts = ClassPrompts.build(accelerator.unwrap_model(model), processor, descriptions, device)
    return PreparedRun(model, processor, optimizer, scheduler, dataloader, prompts, parameters)


def forward_backward(accelerator: Accelerator, run: PreparedRun, batch: dict[str, torch.Tensor], max_grad_norm: float):
    """One micro-batch: forward, backward, and, once the accumulated gradients are complete, the clipped
    optimiser step (the prepared optimiser skips its step on the other micro-batches)."""
    with accelerator.accumulate(run.model):
        outputs = run.model(
            pixel_values=batch["pixel_values"],
            masks=batch["masks"],
            labels=batch["labels"],
            **run.prompts.model_inputs(batch["class_index"]),
        )
        accelerator.backward(outputs.loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.parameters, max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return outputs


def train_until(
    accelerator: Accelerator, run: PreparedRun, state: TrainerState, total_steps: int, training_args: TrainingArguments
) -> Path | None:
    """Train from `state` to `total_steps` optimiser steps, logging and checkpointing on the way.

    Returns the last checkpoint written, if any. The progress bar is closed on errors too, so that an error
    message starts on its own line.
    """
    with tqdm(
        total=total_steps,
        initial=state.global_step,
        desc="training",
        disable=training_args.disable_tqdm or not accelerator.is_main_process,
    ) as progress:
        return run_steps(accelerator, run, state, total_steps, training_args, progress)


def run_steps(
    accelerator: Accelerator,
    run: PreparedRun,
    state: TrainerState,
    total_steps: int,
    training_args: TrainingArguments,
    progress: tqdm,
) -> Path | None:
    """The loop of `train_until`, advancing `progress` by one per optimiser step."""
    checkpoints_dir = training_args.output_path / CHECKPOINTS_DIR
    checkpoint_path = None
    meter = LossMeter()
    while state.global_step < total_steps:
        for batch in epoch_batches(accelerator, run.dataloader, state):
            outputs = forward_backward(accelerator, run, batch, training_args.max_grad_norm)
            meter.add(loss_parts(outputs))
            state.advance_batch(len(run.dataloader))
            if not accelerator.sync_gradients:
                continue
            learning_rate = run.scheduler.get_last_lr()[0]
            if not accelerator.optimizer_step_was_skipped:
                run.scheduler.step()
            state.global_step += 1
            progress.update(1)
            if state.global_step % training_args.logging_steps == 0 or state.global_step == total_steps:
                entry = {"step": state.global_step, "epoch": state.epoch, "lr": learning_rate}
                entry.update(meter.pop_means(accelerator))
                state.loss_history.append(entry)
                accelerator.log({name: entry[name] for name in (*LOSS_NAMES, "lr")}, step=state.global_step)
                progress.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{learning_rate:.2e}")
            if training_args.save_steps and state.global_step % training_args.save_steps == 0:
                checkpoint_path = save_checkpoint(accelerator, checkpoints_dir, state, training_args.save_total_limit)
            if state.global_step >= total_steps:
                break
    return checkpoint_path


def _train(
    accelerator: Accelerator,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    arguments: dict[str, Any],
) -> TrainResult:
    output_dir = training_args.output_path
    checkpoints_dir = output_dir / CHECKPOINTS_DIR
    rows = load_training_rows(data_args, output_dir, accelerator)
    if accelerator.is_main_process:
        initialise_output_dir(output_dir, arguments, training_args.overwrite)
    accelerator.wait_for_everyone()
    run = prepare_run(accelerator, rows, model_args, data_args, training_args)

    state = TrainerState(num_processes=accelerator.num_processes, batch_size=training_args.batch_size)
    checkpoint_path = None
    if training_args.resume:
        state, checkpoint_path = resume_state(accelerator, checkpoints_dir, state)
    steps_per_epoch = math.ceil(len(run.dataloader) / training_args.gradient_accumulation_steps)
    total_steps = training_args.max_steps or training_args.epochs * steps_per_epoch
    accelerator.init_trackers("moeclip", config=tracker_config(arguments))
    accelerator.print(
        f"Training on {len(rows)} images of {len(run.prompts.input_ids)} class(es), {accelerator.num_processes} "
        f"process(es): {total_steps} steps of {steps_per_epoch} per epoch; "
        f"{sum(parameter.numel() for parameter in run.parameters):,} trainable parameters."
    )
    checkpoint_path = train_until(accelerator, run, state, total_steps, training_args) or checkpoint_path

    if checkpoint_path != checkpoint_folder(checkpoints_dir, state.global_step):
        checkpoint_path = save_checkpoint(accelerator, checkpoints_dir, state, training_args.save_total_limit)
    final_dir = output_dir / FINAL_MODEL_DIR
    save_final_model(accelerator, run.model, run.processor, final_dir)
    accelerator.print(f"Trained model written to {final_dir} (checkpoint {checkpoint_path.name}).")
    return TrainResult(
        model_path=final_dir,
        checkpoint_path=checkpoint_path,
        global_step=state.global_step,
        loss_history=state.loss_history,
        model=accelerator.unwrap_model(run.model, keep_fp32_wrapper=False).eval(),
        processor=run.processor,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`train.py`'s entry point: parse flags (or one YAML/JSON file) and train.

    Returns 0 on success, 2 with a one-line message for arguments or a setup that cannot start a run, and 1
    with a message naming the file when a training sample turns out unusable during the run.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    try:
        arguments = parse_args(argv)
    except ValueError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    try:
        train(*arguments)
    except TrainingConfigurationError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except TrainingDataError as error:
        _, _, training_args = arguments
        saved = list_checkpoints(training_args.output_path / CHECKPOINTS_DIR)
        advice = (
            f"the last checkpoint, {saved[-1]}, is kept: mend or remove the file and run again with --resume."
            if saved
            else "no checkpoint was written: mend or remove the file and run again."
        )
        print(f"train.py: error: {error}\n{advice}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "ClassPrompts",
    "EpochShuffleSampler",
    "LOSS_NAMES",
    "TrainResult",
    "TrainingCollator",
    "TrainingConfigurationError",
    "TrainingDataError",
    "TrainingSamples",
    "build_model_and_processor",
    "enable_gradient_checkpointing",
    "main",
    "train",
]
