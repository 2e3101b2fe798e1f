"""The BMAD medical layout (Brain MRI, Liver CT, Retina OCT), Head CT and the colon polyp sets.

::

    <root>/<split>/good/img/<name>          normal
    <root>/<split>/Ungood/img/<name>        anomalous
    <root>/<split>/Ungood/label/<name>      its mask, same file name (masks of normal images,
                                            where a copy has them, are blank and not read)

Each of these benchmarks is one class, named as in ``moeclip_hf.benchmarks`` ("brain",
"liver", "retina", "head_ct", "colondb", ...).

- Head CT has image labels only (METHOD.md): the same layout without ``label`` folder, the form
  the BMAD-style copies used by zero-shot work ship; a ``label`` folder, if present, is ignored.
- The colon sets (ColonDB, ClinicDB, CVC-300, Kvasir, Endo) are anomalous only, so ``good`` is
  absent; they are also accepted as published, ``<root>/images/<name>`` with
  ``<root>/masks/<name>``, which is read as their test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...benchmarks import BENCHMARKS
from .base import BenchmarkLayout, Sample, list_images, require_mask


class BMADLayout(BenchmarkLayout):
    """``<split>/good/img``, ``<split>/Ungood/img`` and ``<split>/Ungood/label``."""

    #: Whether every anomalous image must have a pixel mask (False only for Head CT).
    has_masks: ClassVar[bool] = True

    @property
    def class_name(self) -> str:
        """The benchmark's single class, as named in the prompt table."""
        return BENCHMARKS[self.name].classes[0]

    def classes(self, split: str) -> list[str]:
        return [self.class_name]

    def samples(self, class_name: str, split: str) -> list[Sample]:
        split_folder = self.root / split
        normal_folder = split_folder / "good" / "img"
        anomalous_folder = split_folder / "Ungood" / "img"
        if not normal_folder.is_dir() and not anomalous_folder.is_dir():
            raise FileNotFoundError(
                f"{self.name}: neither {normal_folder} nor {anomalous_folder} exists (BMAD layout expected)"
            )
        samples = [Sample(image, None, 0, class_name) for image in list_images(normal_folder)]
        samples += self._anomalous(anomalous_folder, split_folder / "Ungood" / "label", class_name)
        return sorted(samples, key=lambda sample: sample.image_path)

    def _anomalous(self, image_folder: Path, mask_folder: Path, class_name: str) -> list[Sample]:
        images = list_images(image_folder)
        if not self.has_masks:
            return [Sample(image, None, 1, class_name) for image in images]
        if images and not mask_folder.is_dir():
            raise FileNotFoundError(f"{self.name} has pixel labels, but their folder is missing: {mask_folder}")
        return [Sample(image, require_mask(mask_folder, image), 1, class_name) for image in images]


class BrainMRI(BMADLayout):
    """BMAD Brain MRI (BraTS2021 slices)."""

    name = "brain_mri"


class LiverCT(BMADLayout):
    """BMAD Liver CT (BTCV and LiTS slices)."""

    name = "liver_ct"


class RetinaOCT(BMADLayout):
    """BMAD Retina OCT (RESC)."""

    name = "retina_oct"


class HeadCT(BMADLayout):
    """Head CT: ``test/good/img`` and ``test/Ungood/img``, image labels only."""

    name = "head_ct"
    has_masks = False


class ColonLayout(BMADLayout):
    """A polyp set: BMAD-style ``test/Ungood/{img,label}``, or ``images/`` with ``masks/``."""

    def samples(self, class_name: str, split: str) -> list[Sample]:
        image_folder = self.root / "images"
        if split == "test" and not (self.root / split).is_dir() and image_folder.is_dir():
            return self._anomalous(image_folder, self.root / "masks", class_name)
        return super().samples(class_name, split)


class ColonDB(ColonLayout):
    """CVC-ColonDB polyps."""

    name = "colondb"


class ClinicDB(ColonLayout):
    """CVC-ClinicDB polyps."""

    name = "clinicdb"


class CVC300(ColonLayout):
    """CVC-300 polyps."""

    name = "cvc300"


class Kvasir(ColonLayout):
    """Kvasir-SEG polyps."""

    name = "kvasir"


class Endo(ColonLayout):
    """Endo polyps."""

    name = "endo"
