"""Layouts whose labels are not folder names: a label table, yes/no folders, or masks beside the images.

- :class:`KaggleHeadCT`: Head CT as Kaggle publishes it, ``head_ct/<id:03d>.png`` and ``labels.csv``.
- :class:`YesNoFolders`: Br35H and the Kaggle Brain MRI set, ``yes/`` (tumour) and ``no/`` (normal).
- :class:`KolektorParts`: KolektorSDD, ``kosNN/PartN.jpg`` with ``kosNN/PartN_label.bmp``.
- :class:`DAGMKaggle`: DAGM 2007 as uploaded to Kaggle, ``ClassN/Test/NNNN.PNG`` with
  ``ClassN/Test/Label/NNNN_label.PNG`` for the defective images.

None of these sets has a train/test split of its own that zero-shot work uses: the whole set is the ``test``
split, as in AnomalyCLIP's and AdaCLIP's scripts (DAGM's own ``Test`` folder excepted).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..images import open_image
from .base import BenchmarkLayout, Sample, child, find_mask, has_images, list_images, subfolders


class KaggleHeadCT(BenchmarkLayout):
    """``labels.csv`` beside ``head_ct/`` (or ``head_ct/head_ct/``, as the Kaggle archive nests it).

    The CSV has a header row, then one ``id, label`` row per image: label 1 is a haemorrhage (anomalous),
    0 normal, and image ``id`` is the file ``<id:03d>.png`` (AdaCLIP's ``data_preprocess/headct-pre.py``
    reads it so). The header's column names are not checked: they could not be confirmed against a copy.
    """

    pattern = "labels.csv (id, hemorrhage) beside head_ct/<id:03d>.png"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return (root / "labels.csv").is_file() and cls.image_folder(root) is not None

    @staticmethod
    def image_folder(root: Path) -> Path | None:
        for folder in (root / "head_ct" / "head_ct", root / "head_ct"):
            if has_images(folder):
                return folder
        return None

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if split == "test" else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        labels = self._read_labels(self.root / "labels.csv")
        samples = []
        for image in list_images(self.image_folder(self.root) or self.root / "head_ct"):
            label = labels.pop(int(image.stem), None) if image.stem.isdigit() else None
            if label is None:
                self.problems.append(f"{image} has no row in {self.root / 'labels.csv'}")
                continue
            samples.append(Sample(image, None, label, class_name))
        for missing in sorted(labels):
            self.problems.append(f"{self.root / 'labels.csv'} labels image {missing:03d}, but it is missing")
        return sorted(samples, key=lambda sample: sample.image_path)

    @staticmethod
    def _read_labels(path: Path) -> dict[int, int]:
        labels = {}
        with open(path, newline="", encoding="utf-8") as handle:
            rows = csv.reader(handle)
            next(rows, None)
            for number, row in enumerate(rows, start=2):
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                if len(cells) < 2 or not cells[0].isdigit() or cells[1] not in ("0", "1"):
                    raise ValueError(f"{path} line {number}: expected 'id, label' with label 0 or 1, got {row}")
                labels[int(cells[0])] = int(cells[1])
        return labels


class YesNoFolders(BenchmarkLayout):
    """``yes/`` (anomalous) and ``no/`` (normal) image folders; Br35H's unlabelled ``pred/`` is not read."""

    pattern = "yes/* (tumour) and no/* (normal)"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return has_images(child(root, "yes")) and has_images(child(root, "no"))

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if split == "test" else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = [Sample(image, None, 0, class_name) for image in list_images(child(self.root, "no"))]
        samples += [Sample(image, None, 1, class_name) for image in list_images(child(self.root, "yes"))]
        return sorted(samples, key=lambda sample: sample.image_path)


class KolektorParts(BenchmarkLayout):
    """KolektorSDD: ``kosNN/PartN.jpg`` and its mask ``kosNN/PartN_label.bmp``, every image a test image.

    The dataset labels images only through their masks: an image is anomalous when its mask has a non-zero
    pixel (anomalib's ``kolektor.py`` decides the same way), so every mask is opened once here.
    """

    pattern = "kosNN/PartN.jpg with kosNN/PartN_label.bmp"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(folder.name.lower().startswith("kos") and has_images(folder) for folder in subfolders(root))

    def classes(self, split: str) -> list[str]:
        return [self.benchmark.single_class] if split == "test" else []

    def samples(self, class_name: str, split: str) -> list[Sample]:
        samples = []
        for folder in subfolders(self.root):
            for image in list_images(folder):
                if image.stem.endswith("_label"):
                    continue
                mask = find_mask(folder, image)
                if mask is None:
                    self.problems.append(f"no label mask for {image}: expected {folder / (image.stem + '_label.bmp')}")
                    continue
                anomalous = bool(np.asarray(open_image(mask)).any())
                samples.append(Sample(image, mask if anomalous else None, int(anomalous), class_name))
        return sorted(samples, key=lambda sample: sample.image_path)


class DAGMKaggle(BenchmarkLayout):
    """``ClassN/{Train,Test}/NNNN.PNG``; a defective image has ``ClassN/<split>/Label/NNNN_label.PNG``.

    An image is anomalous exactly when its label file exists, as AnomalyCLIP's ``DAGM.py`` decides.
    """

    pattern = "ClassN/Test/NNNN.PNG with ClassN/Test/Label/NNNN_label.PNG for defective images"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any(
            has_images(child(folder, split)) and child(child(folder, split), "Label").is_dir()
            for folder in subfolders(root)
            for split in ("Test", "Train")
        )

    def classes(self, split: str) -> list[str]:
        return [folder.name for folder in subfolders(self.root) if has_images(child(folder, split))]

    def samples(self, class_name: str, split: str) -> list[Sample]:
        split_folder = child(self.root / class_name, split)
        label_folder = child(split_folder, "Label")
        samples = []
        for image in list_images(split_folder):
            mask = find_mask(label_folder, image)
            samples.append(Sample(image, mask, int(mask is not None), class_name))
        return sorted(samples, key=lambda sample: sample.image_path)
