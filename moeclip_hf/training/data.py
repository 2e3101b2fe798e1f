"""The training data: which rows, in which order, augmented how, batched with each sample's class prompts.

Everything random is a pure function of the seed, so that a resumed run repeats the uninterrupted one:

- the data order of epoch e is a permutation drawn from a generator seeded with (seed, e)
  (`EpochShuffleSampler`), and the position in the epoch is restored with `Accelerator.skip_first_batches`;
- the augmentation of sample i in epoch e draws from a generator seeded with (seed, e, i)
  (`moeclip_hf.data.transforms.JointAugmentation.for_sample`), so it depends on neither worker processes nor
  where a run was interrupted;
- the DataLoader has its own generator, so starting an epoch's iterator consumes nothing from the global RNG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from datasets import Dataset
from torch.utils.data import DataLoader, Sampler

from ..data.loading import class_settings, collate_samples, load_benchmark
from ..data.synthetic import generate_splits
from ..data.transforms import ClipPreprocess, JointAugmentation, derived_seed
from ..configuration import MoECLIPConfig
from ..modeling.processing_moeclip import MoECLIPProcessor
from ..modeling.prompts import class_wording
from .arguments import DataArguments, TrainingArguments
from .errors import TrainingConfigurationError, TrainingDataError
from .run_folder import SYNTHETIC_DIR

#: The benchmark layout the synthetic generator writes, and the split of it that training reads.
SYNTHETIC_LAYOUT, SYNTHETIC_TRAIN_ROOT = "mvtec", "train"
SYNTHETIC_MARKER = "generation.json"


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

    Indexed by the `(epoch, index)` keys of `EpochShuffleSampler`. Preprocessing is the evaluation's
    (`moeclip_hf.data.transforms.ClipPreprocess`); the augmentation follows the model's config: on [0, 1] pixels
    with colour jitter (the paper), or without jitter on the normalised image with nearest interpolation
    (`color_jitter=False`, `augment_after_normalization=True`: the released code).
    """

    def __init__(self, rows: Dataset, preprocess: ClipPreprocess, augment: bool, seed: int, color_jitter: bool = True) -> None:
        self.rows = rows
        self.preprocess = preprocess
        self.augment = augment
        self.seed = seed
        self.augmentation_options = {
            "color_jitter": color_jitter,
            "interpolation": "nearest" if preprocess.augment_after_normalization else "bilinear",
        }

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        try:
            row = self.rows[index]
            augmentation = (
                JointAugmentation.for_sample(self.seed, epoch, index, **self.augmentation_options) if self.augment else None
            )
            pixel_values, mask = self.preprocess(row["image"], row["mask"], augmentation)
        except ValueError as error:
            raise TrainingDataError(str(error)) from error
        return {"pixel_values": pixel_values, "mask": mask, "label": row["label"], "class_name": row["class_name"]}


class TrainingCollator:
    """Stacks samples into a batch and adds each sample's class prompts (tokenized once per class, from the
    class's `description`).

    The model encodes the prompts through its cache of sentence embeddings, so each class's frozen text
    tower runs once per process and only the (optional) trainable text projection runs every step.
    """

    def __init__(self, processor: MoECLIPProcessor, descriptions: Mapping[str, str]) -> None:
        self.class_index = {name: index for index, name in enumerate(descriptions)}
        tokens = processor.tokenize_descriptions(list(descriptions.values()))
        self.input_ids, self.attention_mask = tokens["prompt_input_ids"], tokens["prompt_attention_mask"]

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = torch.tensor([self.class_index[sample["class_name"]] for sample in samples])
        return {
            **collate_samples(samples),
            "prompt_input_ids": self.input_ids[rows],
            "prompt_attention_mask": self.attention_mask[rows],
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
    processor: MoECLIPProcessor,
    config: MoECLIPConfig,
    data_args: DataArguments,
    training_args: TrainingArguments,
) -> DataLoader:
    """The (unprepared) training DataLoader: seeded epoch shuffling, per-sample seeded augmentation as the model's
    config asks (`color_jitter`, `augment_after_normalization`), each class's prompts in its wording
    (`class_descriptions`)."""
    settings = class_settings(rows)
    descriptions = {
        name: class_wording(name, settings[name][0], config.class_descriptions) for name in sorted(settings)
    }
    preprocess = ClipPreprocess(processor.image_processor, config.augment_after_normalization)
    return DataLoader(
        TrainingSamples(rows, preprocess, data_args.augment, training_args.seed, config.color_jitter),
        batch_size=training_args.batch_size,
        sampler=EpochShuffleSampler(len(rows), training_args.seed),
        collate_fn=TrainingCollator(processor, descriptions),
        num_workers=data_args.num_workers,
        generator=torch.Generator().manual_seed(training_args.seed),
        pin_memory=torch.cuda.is_available(),
    )


__all__ = [
    "EpochShuffleSampler",
    "TrainingCollator",
    "TrainingSamples",
    "ensure_synthetic_data",
    "load_training_rows",
    "make_dataloader",
]
