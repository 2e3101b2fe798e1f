"""The MoECLIP training loop on Accelerate: setup, the step, logging, checkpoints and exact resumption.

One code path serves `python train.py`, `accelerate launch train.py`, `torchrun --nproc_per_node N train.py`
and the `moeclip demo` command (through `train`). Resuming a run reproduces the uninterrupted run exactly
(same seed, same hardware): model weights, Adam moments, the scheduler and the global torch/numpy/python RNGs
(MoE dropout) are restored by `Accelerator.load_state` (see `checkpointing`), and the data order and
augmentation are pure functions of the seed (see `moeclip_hf.training.data`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, is_tensorboard_available, set_seed
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from .arguments import LEARNING_RATES, DataArguments, ModelArguments, TrainingArguments, arguments_to_dict
from .checkpointing import (
    CHECKPOINTS_DIR,
    TrainerState,
    checkpoint_folder,
    find_resumable_checkpoint,
    register_model_state_hooks,
    save_checkpoint,
    save_final_model,
)
from .data import load_training_rows, make_dataloader
from .model import build_model_and_processor, enable_gradient_checkpointing
from .run_folder import FINAL_MODEL_DIR, LOGS_DIR, check_output_dir, initialise_output_dir

logger = logging.getLogger(__name__)

#: The parts of the loss that `MoECLIPOutput` carries and that are logged.
LOSS_NAMES = ("loss", "segmentation_loss", "classification_loss", "etf_loss", "balance_loss")


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
    parts = [getattr(outputs, name) for name in LOSS_NAMES]
    return torch.stack([(zero if part is None else part).detach().float() for part in parts])


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
    dataloader = make_dataloader(rows, processor, model.config, data_args, training_args)  # before DDP wraps it
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    learning_rate = training_args.learning_rate or LEARNING_RATES[model.config.compatibility]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate, betas=(training_args.adam_beta1, training_args.adam_beta2))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, training_args.lr_milestones, training_args.lr_gamma)
    model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, dataloader, scheduler)
    register_model_state_hooks(accelerator, processor)
    return PreparedRun(model, processor, optimizer, scheduler, dataloader, parameters)


def forward_backward(accelerator: Accelerator, run: PreparedRun, batch: dict[str, torch.Tensor], max_grad_norm: float):
    """One micro-batch: forward, backward, and, once the accumulated gradients are complete, the clipped
    optimiser step (the prepared optimiser skips its step on the other micro-batches)."""
    with accelerator.accumulate(run.model):
        outputs = run.model(**batch)
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
        f"Training on {len(rows)} images of {len(rows.unique('class_name'))} class(es), {accelerator.num_processes} "
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


__all__ = ["LOSS_NAMES", "TrainResult", "train"]
