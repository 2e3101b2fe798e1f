"""What every benchmark layout shares: the sample record, the layout interface, file-finding helpers.

A layout only *finds* files: it turns a root folder into sorted :class:`Sample` records, class by
class. Decoding, preprocessing and the ``datasets.Dataset`` around the records live elsewhere
(``moeclip_hf.data.images``, ``.transforms``, ``.loading``), so a new layout is one small class.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...benchmarks import get_benchmark
from ...modeling.prompts import describe
from ..images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Sample:
    """One test (or training) image: where it is, its mask if it has one, its label and class."""

    image_path: Path
    mask_path: Path | None
    label: int
    class_name: str


class BenchmarkLayout(ABC):
    """The folder layout of one benchmark.

    Subclasses set `name` (the registry key, also the dataset name given to
    ``prompts.describe`` and ``moeclip_hf.benchmarks``) and implement :meth:`classes` and
    :meth:`samples`. Both return sorted results so that a dataset's row order never depends on
    the file system.
    """

    name: ClassVar[str]

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name} root folder not found: {self.root}")

    @abstractmethod
    def classes(self, split: str) -> list[str]:
        """The sorted class names this root holds for `split`."""

    @abstractmethod
    def samples(self, class_name: str, split: str) -> list[Sample]:
        """The samples of one class for `split`, sorted by image path."""

    def describe(self, class_name: str) -> str:
        """The prompt description of `class_name` (METHOD.md, "Class descriptions")."""
        return describe(class_name, self.name)

    def domain(self, class_name: str) -> str:
        """``"industrial"`` or ``"medical"``: it selects the map blur and the score fusion."""
        return get_benchmark(self.name).domain


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted; hidden files (``.DS_Store``, ``._x.png``) skipped."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def subfolders(folder: Path) -> list[Path]:
    """The visible subfolders of `folder`, sorted by name."""
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def find_mask(folder: Path, image: Path) -> Path | None:
    """The mask of `image` in `folder`: ``<stem>_mask.<ext>`` (MVTec-AD, DTD) or ``<stem>.<ext>``
    (BTAD, BMAD), PNG first, then the image's own extension, then any image extension."""
    suffixes = dict.fromkeys((".png", image.suffix, *sorted(IMAGE_SUFFIXES)))
    for stem in (f"{image.stem}_mask", image.stem):
        for suffix in suffixes:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def require_mask(folder: Path, image: Path) -> Path:
    """:func:`find_mask`, failing with the expected location for an anomalous image without mask."""
    mask = find_mask(folder, image)
    if mask is None:
        raise FileNotFoundError(
            f"no mask for anomalous image {image}: expected {folder / (image.stem + '_mask.png')} "
            f"or {folder / (image.stem + '.png')}"
        )
    return mask


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refused with a ValueError unless it stays inside `root`.

    Paths in a table (VisA's CSV, a JSON-lines meta file) come from a file anyone can edit;
    an absolute path, ``..`` or a symbolic link leading out of the root would make the loader
    read files the user never pointed it at. `where` names the table line for the message.
    """
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ValueError(f"{where}: path {relative!r} is absolute; paths must be relative to the root {root}")
    path = root / candidate
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{where}: path {relative!r} escapes the root {root}")
    return path


def require_file(path: Path, where: str) -> Path:
    """`path`, or a FileNotFoundError naming it and the table line that refers to it."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: file not found: {path}")
    return path
