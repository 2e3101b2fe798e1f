"""The MVTec-AD folder layout and the benchmarks that share it (BTAD, RSDD, DTD-Synthetic).

::

    <root>/<class>/<split>/good/<id>.png                   normal ("ok" for BTAD)
    <root>/<class>/<split>/<defect>/<id>.png               anomalous
    <root>/<class>/ground_truth/<defect>/<id>_mask.png     its mask (BTAD: <id>.png)

A folder under the root is a class when it holds a ``train``, ``test`` or ``ground_truth`` folder.
Every anomalous image must have its mask: these benchmarks ship one for each, so a missing mask
means a broken copy, and scoring it as an all-normal mask would silently lower the pixel metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import BenchmarkLayout, Sample, list_images, require_mask, subfolders

_CLASS_MARKERS = ("train", "test", "ground_truth")


class MVTecLayout(BenchmarkLayout):
    """``<class>/<split>/<defect>/*`` with masks in ``<class>/ground_truth/<defect>/``."""

    #: Folder names that hold normal images (MVTec-AD and DTD: "good"; BTAD: "ok").
    normal_folders: ClassVar[frozenset[str]] = frozenset({"good", "ok"})

    def class_folders(self) -> dict[str, Path]:
        """Class name -> class folder, sorted by name."""
        return {
            folder.name: folder
            for folder in subfolders(self.root)
            if any((folder / marker).is_dir() for marker in _CLASS_MARKERS)
        }

    def classes(self, split: str) -> list[str]:
        return list(self.class_folders())

    def samples(self, class_name: str, split: str) -> list[Sample]:
        class_folder = self.class_folders()[class_name]
        split_folder = class_folder / split
        if not split_folder.is_dir():
            raise FileNotFoundError(f"{self.name} class {class_name!r} has no {split!r} folder: {split_folder}")
        samples = []
        for defect_folder in subfolders(split_folder):
            normal = defect_folder.name in self.normal_folders
            mask_folder = class_folder / "ground_truth" / defect_folder.name
            for image in list_images(defect_folder):
                mask = None if normal else require_mask(mask_folder, image)
                samples.append(Sample(image, mask, 0 if normal else 1, class_name))
        return sorted(samples, key=lambda sample: sample.image_path)


class MVTecAD(MVTecLayout):
    """MVTec-AD: 15 classes (METHOD.md, "The 14 benchmarks")."""

    name = "mvtec"


class BTAD(MVTecLayout):
    """BTAD: classes ``01``, ``02``, ``03``; ``test/ok`` and ``test/ko`` (BMP or PNG), masks in
    ``ground_truth/ko/<id>.png``."""

    name = "btad"


class DTDSynthetic(MVTecLayout):
    """DTD-Synthetic: the MVTec-AD layout with texture classes such as ``Woven_001``."""

    name = "dtd"


class RSDD(MVTecLayout):
    """RSDD (rail surface defects) in the MVTec-AD layout with the single class ``rsdd``.

    The root holds either the class folder, ``<root>/rsdd/test/...`` and
    ``<root>/rsdd/ground_truth/...``, or is that folder itself, ``<root>/test/good/*``,
    ``<root>/test/<defect>/*`` and ``<root>/ground_truth/<defect>/<id>_mask.png``.
    """

    name = "rsdd"

    def class_folders(self) -> dict[str, Path]:
        for folder in (self.root / self.name, self.root):
            if any((folder / marker).is_dir() for marker in _CLASS_MARKERS):
                return {self.name: folder}
        return {}
