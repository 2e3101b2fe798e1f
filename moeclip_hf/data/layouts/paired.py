"""Image folder beside mask folder: segmentation sets where every image is anomalous (the polyp sets, TN3K,
ISIC).

::

    <root>/<images>/<name>      an anomalous image (a polyp, a nodule, a lesion)
    <root>/<masks>/<name>       its mask: the same stem, ``_Segmentation`` appended for ISIC

The folder pairs, as the sets are published or copied:

- ``images`` / ``masks``: the PraNet/AnomalyCLIP polyp test sets, the released code's trees, Kvasir-SEG
  (JPEG masks), the EndoTect test set under ``test dataset/`` (JPEG masks);
- ``Original`` / ``Ground Truth``: CVC-ClinicDB as published (TIF), and the PNG copy Kaggle ships beside it;
- ``test-image`` / ``test-mask``: TN3K (TRFE-Net's ``dataloaders/tn3k.py``);
- ``ISBI2016_ISIC_Part1_Test_Data`` / ``ISBI2016_ISIC_Part1_Test_GroundTruth``: the ISIC 2016 test set.

These sets have no normal images, so only the ``test`` split exists: it is the whole set (METHOD.md: the
colon sets report pixel metrics only). JPEG masks keep their compression noise; they are binarised with
``!= 0`` as every mask is (METHOD.md, "Backbone"), as the released code does.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import BenchmarkLayout, Sample, has_images, list_images


class ImageMaskFolders(BenchmarkLayout):
    """Anomalous images in one folder, their masks under the same stem in a sibling folder."""

    #: (image folder, mask folder) names, in the order they are tried.
    folder_pairs: ClassVar[tuple[tuple[str, str], ...]] = (
        ("images", "masks"),
        ("Original", "Ground Truth"),
        ("test-image", "test-mask"),
        ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
    )
    pattern = "images/<name> with masks/<name> (also Original + 'Ground Truth', test-image + test-mask, ISIC 2016's)"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return cls.folders(root) is not None

    @classmethod
    def folders(cls, root: Path) -> tuple[Path, Path] | None:
        """The first (image folder, mask folder) pair of `root` whose image folder holds images."""
        for images, masks in cls.folder_pairs:
            if has_images(root / images):
                return root / images, root / masks
        return None

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if split == "test" else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        image_folder, mask_folder = self.folders(self.root) or (self.root / "images", self.root / "masks")
        samples = [Sample(image, self.mask_of(image, mask_folder), 1, class_name) for image in list_images(image_folder)]
        return sorted(samples, key=lambda sample: sample.image_path)
