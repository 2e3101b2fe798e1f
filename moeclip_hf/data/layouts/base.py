"""What every folder layout shares: the sample record, the layout interface, file-finding helpers.

A layout only *finds* files: it turns a root folder into sorted :class:`Sample` records, class by
class. Decoding, preprocessing and the ``datasets.Dataset`` around the records live elsewhere
(``moeclip_hf.data.images``, ``.transforms``, ``.loading``), so a new layout is one small class.

A layout is one folder *convention* (MVTec-style state folders, BMAD's ``img``/``label`` folders, an
image folder beside a mask folder, ...). Which conventions a benchmark can be read from, and in what order
they are tried, is ``layouts.routing.ROUTES``; what a benchmark's classes are called and how they are
described is the benchmarks table (``moeclip_hf.benchmarks``), which every layout reads through
:attr:`BenchmarkLayout.benchmark`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...benchmarks import Benchmark
from ...modeling.prompts import describe
from ..images import IMAGE_SUFFIXES

#: The split folders a layout looks for when it checks whether a root is laid out its way.
SPLIT_FOLDERS: tuple[str, ...] = ("test", "train", "valid")
#: Folder names that hold normal images in state-folder layouts (MVTec-AD, DTD, MPDD: "good"; BTAD: "ok").
NORMAL_FOLDERS: frozenset[str] = frozenset({"good", "ok"})
#: How mask files are named after their image's stem, in the order they are tried: ``_mask`` (MVTec-AD,
#: DTD, MPDD), the stem itself (BTAD, BMAD, RSDD, VisA, the polyp sets), ``_label`` (KolektorSDD, DAGM)
#: and ``_Segmentation`` (ISIC).
MASK_NAME_SUFFIXES: tuple[str, ...] = ("_mask", "", "_label", "_Segmentation")


@dataclass(frozen=True)
class Sample:
    """One test (or training) image: where it is, its mask if it has one, its label and class."""

    image_path: Path
    mask_path: Path | None
    label: int
    class_name: str


class BenchmarkLayout(ABC):
    """One folder convention, read for one benchmark.

    Subclasses set `pattern` (the convention in one line, shown when a root matches no layout) and
    implement :meth:`matches`, :meth:`classes` and :meth:`samples`. The last two return sorted results so
    that a dataset's row order never depends on the file system.

    Problems that should not stop a scan, such as an anomalous image without its mask, are collected in
    :attr:`problems`; ``load_benchmark`` refuses a layout with problems, ``moeclip data check`` lists them.

    Args:
        root: the folder laid out this way.
        benchmark: the benchmarks-table entry it is read for (its name, classes, domain, descriptions).
    """

    pattern: ClassVar[str]

    def __init__(self, root: str | os.PathLike[str], benchmark: Benchmark) -> None:
        self.root = Path(root)
        self.benchmark = benchmark
        self.problems: list[str] = []
        #: What the router had to do to find this layout (a sub-folder it looked into), for messages.
        self.note: str | None = None

    @property
    def name(self) -> str:
        """The benchmark's registry name (``"mvtec"``, ``"head_ct"``)."""
        return self.benchmark.name

    @classmethod
    @abstractmethod
    def matches(cls, root: Path) -> bool:
        """Whether `root` is laid out this way (a cheap look at a few folders, no image is opened)."""

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
        return self.benchmark.domain

    def mask_of(self, image: Path, folder: Path) -> Path | None:
        """The mask of anomalous `image` in `folder`; a missing one is recorded in :attr:`problems` when the
        benchmark has pixel labels (a missing mask means a broken copy: scoring the image against an empty
        mask would silently lower the pixel metrics)."""
        mask = find_mask(folder, image)
        if mask is None and self.benchmark.pixel_labels:
            self.problems.append(missing_mask_message(folder, image))
        return mask


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted; hidden files (``.DS_Store``, ``._x.png``) skipped."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def has_images(folder: Path) -> bool:
    """Whether `folder` directly holds at least one image file."""
    if not folder.is_dir():
        return False
    return any(path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") for path in folder.iterdir())


def subfolders(folder: Path) -> list[Path]:
    """The visible subfolders of `folder`, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def child(folder: Path, name: str) -> Path:
    """``folder / name``, matched case-insensitively when that exact name is absent (``Test`` for ``test``)."""
    exact = folder / name
    if exact.exists() or not folder.is_dir():
        return exact
    return next((path for path in subfolders(folder) if path.name.casefold() == name.casefold()), exact)


def find_mask(folder: Path, image: Path) -> Path | None:
    """The mask of `image` in `folder`: ``<stem><suffix>.<ext>`` for each of :data:`MASK_NAME_SUFFIXES`,
    PNG first, then the image's own extension, then any image extension; never the image itself (KolektorSDD
    keeps images and masks in one folder)."""
    extensions = dict.fromkeys((".png", image.suffix, *sorted(IMAGE_SUFFIXES)))
    for suffix in MASK_NAME_SUFFIXES:
        for extension in extensions:
            candidate = folder / f"{image.stem}{suffix}{extension}"
            if candidate.is_file() and candidate != image:
                return candidate
    return None


def missing_mask_message(folder: Path, image: Path) -> str:
    """Why `image` has no mask: where it was looked for, and what that folder holds."""
    others = ", ".join(f"{image.stem}{suffix}.png" for suffix in MASK_NAME_SUFFIXES[1:])
    return (
        f"no mask for anomalous image {image}: expected {folder / (image.stem + '_mask.png')} "
        f"(or {others}, in any image format); {folder} holds {summarize_folder(folder)}"
    )


def summarize_folder(folder: Path, limit: int = 6) -> str:
    """What `folder` holds, for an error message: its sub-folders and files, a few of each by name."""
    if not folder.is_dir():
        return "nothing (it does not exist)" if not folder.exists() else "nothing (it is a file)"
    entries = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    parts = []
    for kind, names in (
        ("folder", [path.name for path in entries if path.is_dir()]),
        ("file", [path.name for path in entries if not path.is_dir()]),
    ):
        if names:
            shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
            parts.append(f"{len(names)} {kind}{'s' if len(names) > 1 else ''} ({shown})")
    return " and ".join(parts) if parts else "nothing (it is empty)"


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
