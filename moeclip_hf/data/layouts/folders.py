"""State-folder layouts: one folder per image state, ``good`` (or ``ok``) for normal images, any other name
for a kind of defect, masks in a parallel ``ground_truth`` tree (the MVTec-AD convention).

::

    <class>/<split>/good/<id>.png                     normal ("ok" for BTAD)
    <class>/<split>/<defect>/<id>.png                 anomalous
    <class>/ground_truth/<defect>/<id>_mask.png       its mask (or <id>.png, <id>_label.png, ...)

:class:`ClassFolders` reads a root holding one such folder per class (MVTec-AD, BTAD, MPDD, DTD-Synthetic,
VisA's converted 1cls tree, AdaCLIP's DAGM). :class:`StateFolders` reads a root that *is* the one class
folder of a single-class benchmark (RSDD's ``Metal15``, Head CT as the released code and AdaCLIP ship it,
and AdaCLIP's copies of the medical sets).

A folder is a class folder only when a split folder in it holds state folders that hold files, not further
folders, so a BMAD tree (``test/good/img/...``) or a folder of other datasets is not mistaken for classes.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...benchmarks import Benchmark
from .base import (
    NORMAL_FOLDERS,
    SPLIT_FOLDERS,
    BenchmarkLayout,
    Sample,
    has_images,
    list_images,
    subfolders,
)


def is_class_folder(folder: Path) -> bool:
    """Whether a split folder of `folder` (``test``, ``train``, ``valid``) holds state folders, and those
    hold files rather than further folders (a BMAD ``test/good/img`` tree is not a class folder)."""
    states = [state for split in SPLIT_FOLDERS for state in subfolders(folder / split)]
    return bool(states) and not any(subfolders(state) for state in states)


def holds_state_images(folder: Path) -> bool:
    """Whether a state folder of `folder` holds at least one image."""
    return any(has_images(state) for split in SPLIT_FOLDERS for state in subfolders(folder / split))


def read_state_folders(layout: BenchmarkLayout, class_folder: Path, class_name: str, split: str) -> list[Sample]:
    """The samples of `class_folder`'s `split`: state folders of images, masks under ``ground_truth``.

    Masks are looked up only for benchmarks with pixel labels; Head CT, Br35H and the Kaggle Brain MRI
    have image labels only, whatever a copy ships beside them.
    """
    split_folder = class_folder / split
    if not split_folder.is_dir():
        raise FileNotFoundError(f"{layout.name} class {class_name!r} has no {split!r} folder: {split_folder}")
    samples = []
    for state_folder in subfolders(split_folder):
        normal = state_folder.name.casefold() in NORMAL_FOLDERS
        mask_folder = class_folder / "ground_truth" / state_folder.name
        for image in list_images(state_folder):
            if normal:
                samples.append(Sample(image, None, 0, class_name))
            else:
                mask = layout.mask_of(image, mask_folder) if layout.benchmark.pixel_labels else None
                samples.append(Sample(image, mask, 1, class_name))
    return samples


class ClassFolders(BenchmarkLayout):
    """One state-folder tree per class: ``<class>/<split>/{good,<defect>}``, masks in ``<class>/ground_truth``.

    Folders that the benchmarks table groups into one class are pooled (DTD-Synthetic's five ``Woven_*``
    folders are one class, "Woven", in the released protocol); `keep_folders` reads every folder as its
    own class instead.

    Args:
        root: the folder holding the class folders.
        benchmark: the benchmarks-table entry.
        keep_folders: one class per folder, without the table's pooling.
    """

    pattern = "<class>/test/{good,<defect>}/*, masks <class>/ground_truth/<defect>/<stem>[_mask].*"

    def __init__(self, root: str | os.PathLike[str], benchmark: Benchmark, keep_folders: bool = False) -> None:
        super().__init__(root, benchmark)
        self.keep_folders = keep_folders

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(is_class_folder(folder) and holds_state_images(folder) for folder in subfolders(root))

    def class_folders(self) -> dict[str, list[Path]]:
        """Class name -> its folders (several where the table pools them), sorted by name."""
        classes: dict[str, list[Path]] = {}
        for folder in subfolders(self.root):
            if is_class_folder(folder):
                name = folder.name if self.keep_folders else self.benchmark.canonical(folder.name) or folder.name
                classes.setdefault(name, []).append(folder)
        return dict(sorted(classes.items()))

    def classes(self, split: str) -> list[str]:
        return list(self.class_folders())

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = []
        for folder in self.class_folders()[class_name]:
            samples += read_state_folders(self, folder, class_name, split)
        return sorted(samples, key=lambda sample: sample.image_path)


class StateFolders(BenchmarkLayout):
    """The root is the single class folder of a one-class benchmark: ``<split>/{good,<defect>}``."""

    pattern = "test/{good,<defect>}/*, masks ground_truth/<defect>/<stem>[_mask].* (one class)"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return is_class_folder(root) and holds_state_images(root)

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if (self.root / split).is_dir() else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        return sorted(read_state_folders(self, self.root, class_name, split), key=lambda sample: sample.image_path)
