"""The BMAD medical layout (Brain MRI, Liver CT, Retina OCT; BMAD-style copies of Head CT and the polyp sets).

::

    <root>/<split>/good/img/<name>          normal
    <root>/<split>/Ungood/img/<name>        anomalous
    <root>/<split>/Ungood/label/<name>      its mask, same file name (masks of normal images, where a copy
                                            has them in good/label, are blank and not read)

The root is one BMAD category folder (anomalib's ``Brain``, ``Liver``, ``Retina_RESC``; the released code's
``Brain``, ``Liver``, ``Retina``). Each of these benchmarks is one class, named as in the benchmarks table
("brain", "liver", "retina", ...). Masks are read only for benchmarks with pixel labels.
"""

from __future__ import annotations

from pathlib import Path

from .base import SPLIT_FOLDERS, BenchmarkLayout, Sample, has_images, list_images


class BMADFolders(BenchmarkLayout):
    """``<split>/good/img``, ``<split>/Ungood/img`` and ``<split>/Ungood/label``."""

    pattern = "test/good/img/*, test/Ungood/img/*, masks test/Ungood/label/<same name>"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(has_images(root / split / state / "img") for split in SPLIT_FOLDERS for state in ("good", "Ungood"))

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if (self.root / split).is_dir() else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        split_folder = self.root / split
        samples = [Sample(image, None, 0, class_name) for image in list_images(split_folder / "good" / "img")]
        mask_folder = split_folder / "Ungood" / "label"
        for image in list_images(split_folder / "Ungood" / "img"):
            mask = self.mask_of(image, mask_folder) if self.benchmark.pixel_labels else None
            samples.append(Sample(image, mask, 1, class_name))
        return sorted(samples, key=lambda sample: sample.image_path)
