"""``load_benchmark``: a benchmark root folder -> a ``datasets.Dataset``.

Rows hold ``image``, ``mask``, ``label`` (0 normal, 1 anomalous), ``class_name``, ``description``
(the prompt wording, ``prompts.describe``), ``domain`` (``prompts.dataset_domain``) and ``path``.
The ``image`` and ``mask`` columns are ``datasets.Image`` features stored *undecoded*: the dataset's
transform decodes them through ``moeclip_hf.data.images``, which converts every mode to RGB and
names the file when one cannot be read; left to ``datasets``, a truncated file would fail inside a
DataLoader worker with an error that does not say which file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from datasets import ClassLabel, Dataset, DatasetInfo, Features, Image, Value

from .images import read_pair, source_name
from .layouts import BenchmarkLayout, Sample, open_layout
from .transforms import make_transform

logger = logging.getLogger(__name__)

#: The columns of every benchmark dataset, before its transform.
FEATURES = Features(
    {
        "image": Image(decode=False),
        "mask": Image(decode=False),
        "label": ClassLabel(names=["normal", "anomalous"]),
        "class_name": Value("string"),
        "description": Value("string"),
        "domain": Value("string"),
        "path": Value("string"),
    }
)


def load_benchmark(
    name: str,
    root: str | os.PathLike[str],
    split: str = "test",
    classes: str | Sequence[str] | None = None,
    image_size: int | None = None,
    augment: bool = False,
    meta_file: str | os.PathLike[str] | None = None,
    skip_unreadable: bool = False,
    keep_folders: bool = False,
) -> Dataset:
    """Load one benchmark split as a ``datasets.Dataset``, classes sorted, files sorted within a class.

    Args:
        name: a name of ``layouts.list_benchmarks()`` ("mvtec", "visa", "brain_mri", "jsonl", ...).
        root: the benchmark's root folder, laid out as one of its layouts documents (``layouts.ROUTES``), or
            the download folder that wraps it (RSDD's ``Metal15/``, Endo's ``test dataset/``, ...).
        split: the split folder or table value, "test" for the zero-shot benchmarks.
        classes: restrict to these classes; an unknown name is an error listing the known ones.
        image_size: None gives rows with an RGB ``PIL`` image and a binary "L" mask (or None);
            an int gives ``pixel_values`` float32 (3, S, S), CLIP-normalised, and ``mask`` float32
            (1, S, S), zeros where the sample has no mask (METHOD.md, "Backbone").
        augment: apply the training augmentation (METHOD.md, "Losses and training"); needs
            `image_size`.
        meta_file: the JSON-lines file of the "jsonl" layout (default ``<root>/meta.jsonl``).
        skip_unreadable: decode every file now and drop the samples that fail (see
            :func:`validate_images`) instead of failing when such a row is read.
        keep_folders: read every class folder as its own class (DTD-Synthetic: the 12 folders instead of
            the released protocol's 8 classes, the five Woven folders pooled).

    Raises:
        FileNotFoundError: the root, a layout's folder or table, a mask or a listed file is missing
            (``layouts.LayoutNotFoundError`` when the root holds no known layout: its message says what
            was tried, what was found and where the right root is).
        ValueError: unknown benchmark or class, a class without images, a table line that is
            malformed or points outside the root.
    """
    transform = make_transform(image_size, augment)
    layout = open_layout(name, root, meta_file=meta_file, keep_folders=keep_folders)
    dataset = samples_to_dataset(collect_samples(layout, split, classes), layout, split)
    if skip_unreadable:
        dataset, _ = validate_images(dataset)
    return dataset.with_transform(transform)


def collect_samples(layout: BenchmarkLayout, split: str, classes: str | Sequence[str] | None = None) -> list[Sample]:
    """The samples of the requested classes, class by class in sorted order.

    Fails early and by name: an empty root, an unknown class, a class without images, an anomalous image
    without its mask (the first problem the layout met; ``moeclip data check`` lists them all).
    """
    available = layout.classes(split)
    if not available:
        raise FileNotFoundError(f"no {layout.name} classes with a {split!r} split found under {layout.root}")
    if classes is None:
        wanted = available
    else:
        wanted = sorted({classes} if isinstance(classes, str) else set(classes))
        if not wanted:
            raise ValueError("classes is empty; pass None for all classes")
        unknown = [name for name in wanted if name not in available]
        if unknown:
            raise ValueError(f"unknown {layout.name} class(es) {unknown} under {layout.root}; available: {available}")
    samples = []
    for class_name in wanted:
        class_samples = layout.samples(class_name, split)
        if not class_samples:
            raise ValueError(f"{layout.name} class {class_name!r} has no images in split {split!r} under {layout.root}")
        samples += class_samples
    if layout.problems:
        more = f" (and {len(layout.problems) - 1} more problems: moeclip data check lists them)" if len(layout.problems) > 1 else ""
        raise FileNotFoundError(layout.problems[0] + more)
    return samples


def samples_to_dataset(samples: Sequence[Sample], layout: BenchmarkLayout, split: str = "test") -> Dataset:
    """The undecoded dataset of `samples` (columns :data:`FEATURES`), described by `layout`."""
    class_names = sorted({sample.class_name for sample in samples})
    descriptions = {name: layout.describe(name) for name in class_names}
    domains = {name: layout.domain(name) for name in class_names}
    columns = {
        "image": [str(sample.image_path) for sample in samples],
        "mask": [None if sample.mask_path is None else str(sample.mask_path) for sample in samples],
        "label": [sample.label for sample in samples],
        "class_name": [sample.class_name for sample in samples],
        "description": [descriptions[sample.class_name] for sample in samples],
        "domain": [domains[sample.class_name] for sample in samples],
        "path": [str(sample.image_path) for sample in samples],
    }
    description = f"{layout.name} {split} split read from {layout.root} as {type(layout).__name__} ({layout.pattern})"
    if layout.note:
        description += f"; {layout.note}"
    info = DatasetInfo(description=description, features=FEATURES)
    return Dataset.from_dict(columns, features=FEATURES, info=info)


def class_settings(dataset: Dataset) -> dict[str, tuple[str, str]]:
    """Class -> (description, domain), read from the Arrow columns; a class whose rows disagree is refused."""
    columns = dataset.data
    settings: dict[str, tuple[str, str]] = {}
    rows = zip(*(columns.column(name).to_pylist() for name in ("class_name", "description", "domain")), strict=True)
    for class_name, description, domain in rows:
        if settings.setdefault(class_name, (description, domain)) != (description, domain):
            raise ValueError(
                f"class {class_name!r} has rows with (description, domain) {settings[class_name]} and "
                f"{(description, domain)}: one class is scored with one prompt set and one domain."
            )
    return settings


def validate_images(dataset: Dataset) -> tuple[Dataset, list[str]]:
    """Decode every image and mask of `dataset` now; return the readable rows and the skipped paths.

    For training on a large, possibly damaged copy of a benchmark: one bad file should cost one
    sample and a logged warning, not a crash hours into an epoch. The returned dataset keeps the
    input's transform. Evaluation should not skip: a missing test image changes the metrics.
    """
    raw = dataset.with_format(None)
    for column in ("image", "mask"):
        feature = raw.features.get(column)
        if isinstance(feature, Image) and feature.decode:
            raw = raw.cast_column(column, Image(decode=False))
    masks = raw["mask"] if "mask" in raw.column_names else [None] * len(raw)
    keep, skipped, reasons = [], [], []
    for index, (image, mask) in enumerate(zip(raw["image"], masks, strict=True)):
        try:
            read_pair(image, mask)
        except (FileNotFoundError, ValueError) as error:
            skipped.append(source_name(image))
            reasons.append(str(error))
        else:
            keep.append(index)
    if not skipped:
        return dataset, []
    logger.warning(
        "skipped %d of %d samples whose files cannot be read, e.g.: %s",
        len(skipped),
        len(raw),
        "; ".join(reasons[:3]),
    )
    return dataset.select(keep), skipped
