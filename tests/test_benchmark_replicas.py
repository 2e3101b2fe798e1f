"""Every benchmark as users download it: a tiny replica of each real tree loads with the right counts, masks,
descriptions and domains, and so does the released code's JSON-lines form of the paper's 14.

Each replica is a small description table, built in tmp_path: the real folder names, file names, extensions
and mask conventions of the download (or of the copy peers ship), a few files each. The sources of every
layout are in the benchmarks table (``moeclip_hf.benchmarks``, ``moeclip data list --sources``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moeclip_hf.cli import main
from moeclip_hf.data import load_benchmark

IMAGE, MASK, BLANK = "image", "mask", "blank mask"
SIZE = (8, 6)


def write_file(path: Path, kind: str) -> None:
    """An RGB image, a mask with a defect, or an all-zero mask, in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == IMAGE:
        Image.new("RGB", SIZE, (120, 80, 40)).save(path)
        return
    pixels = np.zeros(SIZE[::-1], dtype=np.uint8)
    if kind == MASK:
        pixels[1:4, 2:5] = 255
    Image.fromarray(pixels).save(path)


@dataclass(frozen=True)
class Replica:
    """A benchmark tree in a few files.

    `files`: (path template with ``{i}``, how many, IMAGE / MASK / BLANK); `texts`: other files and their
    content; `counts`: class -> (normal, anomalous) of the test split; `masks`: whether anomalous images have
    masks; `root`: the folder the user points at, relative to the built tree; `reads`: the folder the layout
    must end up reading (a download's sub-folder), relative to the built tree.
    """

    benchmark: str
    files: tuple[tuple[str, int, str], ...]
    counts: dict[str, tuple[int, int]]
    descriptions: dict[str, str]
    domain: str
    texts: dict[str, str] = field(default_factory=dict)
    masks: bool = True
    reads: str = ""
    keep_folders: bool = False

    def build(self, folder: Path) -> Path:
        for template, count, kind in self.files:
            for index in range(count):
                write_file(folder / template.format(i=index), kind)
        for name, text in self.texts.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        return folder


def mvtec_class(name: str, normal: int, defects: dict[str, int], mask: str = "{i:03d}_mask.png") -> tuple:
    """An MVTec-style class folder: train/good, test/good, test/<defect> and ground_truth/<defect>."""
    files = [(f"{name}/train/good/{{i:03d}}.png", 1, IMAGE), (f"{name}/test/good/{{i:03d}}.png", normal, IMAGE)]
    for defect, count in defects.items():
        files += [
            (f"{name}/test/{defect}/{{i:03d}}.png", count, IMAGE),
            (f"{name}/ground_truth/{defect}/{mask}", count, MASK),
        ]
    return tuple(files)


VISA_FILES = (
    ("candle/Data/Images/Normal/{i:04d}.JPG", 3, IMAGE),
    ("candle/Data/Images/Anomaly/{i:03d}.JPG", 2, IMAGE),
    ("candle/Data/Masks/Anomaly/{i:03d}.png", 2, MASK),
    ("pcb1/Data/Images/Normal/{i:04d}.JPG", 2, IMAGE),
    ("pcb1/Data/Images/Anomaly/{i:03d}.JPG", 1, IMAGE),
    ("pcb1/Data/Masks/Anomaly/{i:03d}.png", 1, MASK),
)
VISA_TABLE = "\n".join(
    [
        "object,split,label,image,mask",
        "candle,train,normal,candle/Data/Images/Normal/0000.JPG,",
        "candle,test,normal,candle/Data/Images/Normal/0001.JPG,",
        "candle,test,normal,candle/Data/Images/Normal/0002.JPG,",
        "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png",
        "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png",
        "pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,",
        "pcb1,test,normal,pcb1/Data/Images/Normal/0001.JPG,",
        "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.JPG,pcb1/Data/Masks/Anomaly/000.png",
    ]
)
VISA_DESCRIPTIONS = {"candle": "candle", "pcb1": "dual ultrasonic distance sensor pcb module"}
BMAD_FILES = (
    ("train/good/{i:05d}_60.png", 2, IMAGE),
    ("test/good/img/{i:05d}_95.png", 2, IMAGE),
    ("test/good/label/{i:05d}_95.png", 2, BLANK),
    ("test/Ungood/img/{i:05d}_68.png", 3, IMAGE),
    ("test/Ungood/label/{i:05d}_68.png", 3, MASK),
)
POLYP = "colon endoscopy image"

REPLICAS: dict[str, Replica] = {
    "mvtec": Replica(
        "mvtec",
        mvtec_class("bottle", 2, {"broken_large": 2}) + mvtec_class("metal_nut", 1, {"color": 1, "flip": 1}),
        counts={"bottle": (2, 2), "metal_nut": (1, 2)},
        descriptions={"bottle": "dark bottle", "metal_nut": "metal nut which has four notched edges"},
        domain="industrial",
        texts={"license.txt": "CC BY-NC-SA 4.0", "bottle/.DS_Store": ""},
    ),
    "visa split_csv": Replica(
        "visa", VISA_FILES, {"candle": (2, 2), "pcb1": (1, 1)}, VISA_DESCRIPTIONS, "industrial",
        texts={"split_csv/1cls.csv": VISA_TABLE, "candle/image_anno.csv": "image,label,mask\n"},
    ),
    "visa without split_csv": Replica(
        "visa", VISA_FILES, {"candle": (3, 2), "pcb1": (2, 1)}, VISA_DESCRIPTIONS, "industrial"
    ),
    "visa 1cls tree": Replica(
        "visa",
        (
            ("1cls/candle/train/good/{i:04d}.JPG", 2, IMAGE),
            ("1cls/candle/test/good/1{i:03d}.JPG", 2, IMAGE),
            ("1cls/candle/test/bad/{i:03d}.JPG", 2, IMAGE),
            ("1cls/candle/ground_truth/bad/{i:03d}.png", 2, MASK),
        ),
        {"candle": (2, 2)}, {"candle": "candle"}, "industrial", reads="1cls",
    ),
    "btad": Replica(
        "btad",
        (
            ("BTech_Dataset_transformed/01/train/ok/{i:04d}.bmp", 1, IMAGE),
            ("BTech_Dataset_transformed/01/test/ok/{i:04d}.bmp", 1, IMAGE),
            ("BTech_Dataset_transformed/01/test/ko/{i:04d}.bmp", 2, IMAGE),
            ("BTech_Dataset_transformed/01/ground_truth/ko/{i:04d}.png", 2, MASK),
            ("BTech_Dataset_transformed/02/test/ok/{i:04d}.png", 1, IMAGE),
            ("BTech_Dataset_transformed/02/test/ko/{i:04d}.png", 1, IMAGE),
            ("BTech_Dataset_transformed/02/ground_truth/ko/{i:04d}.png", 1, MASK),
            ("BTech_Dataset_transformed/03/test/ok/{i:04d}.bmp", 2, IMAGE),
            ("BTech_Dataset_transformed/03/test/ko/{i:04d}.bmp", 1, IMAGE),
            ("BTech_Dataset_transformed/03/ground_truth/ko/{i:04d}.bmp", 1, MASK),
        ),
        {"01": (1, 2), "02": (1, 1), "03": (2, 1)},
        {
            "01": "bright concentric rings in neon yellow and blue tones against a dark blue background",
            "02": "vertical fabric lines in warm, dusty pink and beige tones",
            "03": "oval concentric circular rings in gradient shades of blue and white",
        },
        "industrial",
        reads="BTech_Dataset_transformed",
    ),
    "rsdd": Replica(
        "rsdd",
        (
            ("Metal15/test/good/RSDD_II-metal-null-{i:06d}_0000000716.bmp", 2, IMAGE),
            ("Metal15/test/anomaly/RSDD_I-metal-defect-{i:06d}_0000000021.bmp", 2, IMAGE),
            ("Metal15/ground_truth/anomaly/RSDD_I-metal-defect-{i:06d}_0000000021.png", 2, MASK),
        ),
        {"rsdd": (2, 2)}, {"rsdd": "metal"}, "industrial", reads="Metal15",
    ),
    "dtd pooled": Replica(
        "dtd",
        mvtec_class("Blotchy_099", 1, {"bad": 1})
        + mvtec_class("Woven_001", 1, {"bad": 1})
        + mvtec_class("Woven_068", 2, {"bad": 1}),
        {"Blotchy": (1, 1), "Woven": (3, 2)}, {"Blotchy": "Blotchy", "Woven": "Woven"}, "industrial",
    ),
    "dtd 12 folders": Replica(
        "dtd",
        mvtec_class("Blotchy_099", 1, {"bad": 1})
        + mvtec_class("Woven_001", 1, {"bad": 1})
        + mvtec_class("Woven_068", 2, {"bad": 1}),
        {"Blotchy_099": (1, 1), "Woven_001": (1, 1), "Woven_068": (2, 1)},
        {"Blotchy_099": "Blotchy", "Woven_001": "Woven", "Woven_068": "Woven"},
        "industrial",
        keep_folders=True,
    ),
    "brain_mri": Replica(
        "brain_mri", tuple((f"Brain/{t}", n, k) for t, n, k in BMAD_FILES), {"brain": (2, 3)}, {"brain": "scan"},
        "medical", reads="Brain",
    ),
    "liver_ct": Replica("liver_ct", BMAD_FILES, {"liver": (2, 3)}, {"liver": "scan"}, "medical"),
    "retina_oct": Replica(
        "retina_oct", tuple((f"Retina_RESC/{t}", n, k) for t, n, k in BMAD_FILES), {"retina": (2, 3)},
        {"retina": "scan"}, "medical", reads="Retina_RESC",
    ),
    "head_ct released": Replica(
        "head_ct",
        (("test/defect/{i:03d}.png", 2, IMAGE), ("test/good/1{i:02d}.png", 2, IMAGE)),
        {"head_ct": (2, 2)}, {"head_ct": "scan"}, "medical", masks=False,
    ),
    "head_ct AdaCLIP": Replica(
        "head_ct",
        (("headct/test/defect/{i:03d}.png", 2, IMAGE), ("headct/test/good/1{i:02d}.png", 3, IMAGE)),
        {"head_ct": (3, 2)}, {"head_ct": "scan"}, "medical", masks=False, reads="headct",
        texts={"meta.json": "{}"},
    ),
    "head_ct Kaggle": Replica(
        "head_ct",
        (("head_ct/head_ct/{i:03d}.png", 5, IMAGE),),
        {"head_ct": (3, 2)}, {"head_ct": "scan"}, "medical", masks=False,
        texts={"labels.csv": "id, hemorrhage\n0, 1\n1, 1\n2, 0\n3, 0\n4, 0\n"},
    ),
    "colondb": Replica(
        "colondb", (("images/{i}.png", 3, IMAGE), ("masks/{i}.png", 3, MASK)), {"colondb": (0, 3)},
        {"colondb": POLYP}, "medical",
    ),
    "clinicdb original TIF": Replica(
        "clinicdb", (("Original/{i}.tif", 2, IMAGE), ("Ground Truth/{i}.tif", 2, MASK)), {"clinicdb": (0, 2)},
        {"clinicdb": POLYP}, "medical",
    ),
    "clinicdb PNG copy": Replica(
        "clinicdb",
        (
            ("PNG/Original/{i}.png", 2, IMAGE),
            ("PNG/Ground Truth/{i}.png", 2, MASK),
            ("TIF/Original/{i}.tif", 2, IMAGE),
            ("TIF/Ground Truth/{i}.tif", 2, MASK),
        ),
        {"clinicdb": (0, 2)}, {"clinicdb": POLYP}, "medical", reads="PNG",
    ),
    "cvc300": Replica(
        "cvc300", (("images/{i}.png", 2, IMAGE), ("masks/{i}.png", 2, MASK)), {"cvc300": (0, 2)}, {"cvc300": POLYP},
        "medical",
    ),
    "kvasir": Replica(
        "kvasir",
        (("Kvasir-SEG/images/cju{i}d.jpg", 2, IMAGE), ("Kvasir-SEG/masks/cju{i}d.jpg", 2, MASK)),
        {"kvasir": (0, 2)}, {"kvasir": POLYP}, "medical", reads="Kvasir-SEG",
        texts={"Kvasir-SEG/kavsir_bboxes.json": "{}"},
    ),
    "endo": Replica(
        "endo",
        (("test dataset/images/{i}a-cf6d.jpg", 2, IMAGE), ("test dataset/masks/{i}a-cf6d.jpg", 2, MASK)),
        {"endo": (0, 2)}, {"endo": "polyp"}, "medical", reads="test dataset",
    ),
    "mpdd": Replica(
        "mpdd",
        mvtec_class("bracket_black", 1, {"hole": 1, "scratches": 1}) + mvtec_class("tubes", 1, {"anomalous": 2}),
        {"bracket_black": (1, 2), "tubes": (1, 2)},
        {
            "bracket_black": "black ornamental metal bracket with spiral design attached to a rectangular frame",
            "tubes": "scattered metal objects",
        },
        "industrial",
    ),
    "sdd KolektorSDD": Replica(
        "sdd",
        (
            ("kos01/Part{i}.jpg", 2, IMAGE),
            ("kos01/Part{i}_label.bmp", 2, BLANK),
            ("kos02/Part0.jpg", 1, IMAGE),
            ("kos02/Part0_label.bmp", 1, MASK),
            ("kos02/Part1.jpg", 1, IMAGE),
            ("kos02/Part1_label.bmp", 1, BLANK),
        ),
        {"sdd": (3, 1)}, {"sdd": "electrical commutators"}, "industrial",
    ),
    "sdd AdaCLIP": Replica(
        "sdd",
        (
            ("SDD/train/good/kos03_Part{i}_0.png", 1, IMAGE),
            ("SDD/test/good/kos01_Part{i}_0.png", 2, IMAGE),
            ("SDD/test/defect/kos02_Part{i}_1.png", 1, IMAGE),
            ("SDD/ground_truth/defect/kos02_Part{i}_1_mask.png", 1, MASK),
        ),
        {"sdd": (2, 1)}, {"sdd": "electrical commutators"}, "industrial", reads="SDD",
    ),
    "dagm Kaggle": Replica(
        "dagm",
        (
            ("Class1/Train/{i:04d}.PNG", 2, IMAGE),
            ("Class1/Train/Label/{i:04d}_label.PNG", 1, MASK),
            ("Class1/Test/{i:04d}.PNG", 3, IMAGE),
            ("Class1/Test/Label/{i:04d}_label.PNG", 1, MASK),
            ("Class2/Test/{i:04d}.PNG", 2, IMAGE),
            ("Class2/Test/Label/{i:04d}_label.PNG", 1, MASK),
        ),
        {"Class1": (2, 1), "Class2": (1, 1)}, {"Class1": "Class1", "Class2": "Class2"}, "industrial",
        texts={"Class1/Test/Label/Labels.txt": "1\n", "Class2/Test/Label/Labels.txt": "1\n"},
    ),
    "isic": Replica(
        "isic",
        (
            ("ISBI2016_ISIC_Part1_Test_Data/ISIC_{i:07d}.jpg", 2, IMAGE),
            ("ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_{i:07d}_Segmentation.png", 2, MASK),
        ),
        {"isic": (0, 2)}, {"isic": "skin"}, "medical",
    ),
    "isic AdaCLIP": Replica(
        "isic",
        (
            ("isic/test/defect/ISIC_{i:07d}.jpg", 2, IMAGE),
            ("isic/ground_truth/defect/ISIC_{i:07d}_Segmentation.png", 2, MASK),
        ),
        {"isic": (0, 2)}, {"isic": "skin"}, "medical", reads="isic",
    ),
    "tn3k": Replica(
        "tn3k",
        (
            ("test-image/{i:04d}.jpg", 2, IMAGE),
            ("test-mask/{i:04d}.jpg", 2, MASK),
            ("trainval-image/{i:04d}.jpg", 1, IMAGE),
            ("trainval-mask/{i:04d}.jpg", 1, MASK),
        ),
        {"tn3k": (0, 2)}, {"tn3k": "thyroid"}, "medical", texts={"tn3k-trainval-fold0.json": "{}"},
    ),
    "br35h": Replica(
        "br35h",
        (("yes/y{i}.jpg", 2, IMAGE), ("no/no{i}.jpg", 3, IMAGE), ("pred/pred{i}.jpg", 2, IMAGE)),
        {"br35h": (3, 2)}, {"br35h": "brain"}, "medical", masks=False,
    ),
    "brainmri_kaggle": Replica(
        "brainmri_kaggle",
        (
            ("brain_tumor_dataset/yes/Y{i}.jpg", 2, IMAGE),
            ("brain_tumor_dataset/yes/Y1{i}.JPG", 1, IMAGE),
            ("brain_tumor_dataset/no/{i} no.jpeg", 2, IMAGE),
        ),
        {"brainmri_kaggle": (2, 3)}, {"brainmri_kaggle": "brain"}, "medical", masks=False,
        reads="brain_tumor_dataset",
    ),
}


def rows_by_class(dataset) -> dict[str, list[dict]]:
    raw = dataset.with_format(None)
    classes: dict[str, list[dict]] = {}
    for row in raw:
        classes.setdefault(row["class_name"], []).append(row)
    return classes


def test_every_benchmark_has_a_replica():
    from moeclip_hf.data import list_benchmarks

    replicated = {replica.benchmark for replica in REPLICAS.values()}
    assert replicated == set(list_benchmarks()) - {"jsonl"}
    assert len(replicated) == 21


@pytest.mark.parametrize("name", list(REPLICAS))
def test_a_replica_of_the_real_tree_loads_with_its_counts_masks_descriptions_and_domain(tmp_path, name):
    replica = REPLICAS[name]
    replica.build(tmp_path)
    dataset = load_benchmark(replica.benchmark, tmp_path, keep_folders=replica.keep_folders)

    classes = rows_by_class(dataset)
    assert {name: (sum(r["label"] == 0 for r in rows), sum(r["label"] == 1 for r in rows)) for name, rows in
            classes.items()} == replica.counts
    for class_name, rows in classes.items():
        assert {row["description"] for row in rows} == {replica.descriptions[class_name]}
        assert {row["domain"] for row in rows} == {replica.domain}
        for row in rows:
            image = Path(row["image"]["path"])
            assert image.is_relative_to(tmp_path / replica.reads)
            if row["label"] == 0 or not replica.masks:
                assert row["mask"] is None
            else:  # the mask is the image's own: same stem, or the stem with _mask / _label / _Segmentation
                mask = Path(row["mask"]["path"])
                assert mask.stem.startswith(image.stem) and mask != image
    assert (replica.reads in dataset.info.description) if replica.reads else "holds no" not in dataset.info.description
    anomalous = next(index for index, row in enumerate(dataset.with_format(None)) if row["label"] == 1)
    decoded = dataset[anomalous]  # the real formats decode: BMP, TIF, JPEG masks binarised to {0, 255}
    assert decoded["image"].mode == "RGB" and decoded["image"].size == SIZE
    if replica.masks:
        assert set(np.unique(np.asarray(decoded["mask"]))) == {0, 255}


# The released code's metadata: dataset/metadata/<name>/full-shot.jsonl, one line per image.


@dataclass(frozen=True)
class ReleasedMetadata:
    """A released metadata file in a few lines: its class name as released, how it writes labels, where its
    normal and anomalous images and masks are (templates; None where the set has none)."""

    class_name: str
    normal: str | None
    anomalous: str
    mask: str | None
    float_labels: bool
    description: str
    domain: str


RELEASED = {
    "MVTec": ReleasedMetadata(
        "bottle", "bottle/test/good/{i:03d}.png", "bottle/test/broken_large/{i:03d}.png",
        "bottle/ground_truth/broken_large/{i:03d}_mask.png", False, "dark bottle", "industrial",
    ),
    "VisA": ReleasedMetadata(
        "pcb1", "pcb1/Data/Images/Normal/{i:04d}.JPG", "pcb1/Data/Images/Anomaly/{i:03d}.JPG",
        "pcb1/Data/Masks/Anomaly/{i:03d}.png", False, "dual ultrasonic distance sensor pcb module", "industrial",
    ),
    "BTAD": ReleasedMetadata(
        "01", "01/test/ok/{i:04d}.bmp", "01/test/ko/{i:04d}.bmp", "01/ground_truth/ko/{i:04d}.png", True,
        "bright concentric rings in neon yellow and blue tones against a dark blue background", "industrial",
    ),
    "RSDD": ReleasedMetadata(
        "RSDD", "Metal15/test/good/RSDD_II-metal-null-{i:06d}_0000000716.bmp",
        "Metal15/test/anomaly/RSDD_I-metal-defect-{i:06d}_0000000021.bmp",
        "Metal15/ground_truth/anomaly/RSDD_I-metal-defect-{i:06d}_0000000021.png", False, "metal", "industrial",
    ),
    "DTD-Synthetic": ReleasedMetadata(
        "Woven", "Woven_127/test/good/{i:03d}.png", "Woven_001/test/bad/{i:03d}.png",
        "Woven_001/ground_truth/bad/{i:03d}_mask.png", False, "Woven", "industrial",
    ),
    "Brain": ReleasedMetadata(
        "Brain", "test/good/img/{i:05d}_95.png", "test/Ungood/img/{i:05d}_68.png", "test/Ungood/label/{i:05d}_68.png",
        True, "scan", "medical",
    ),
    "Liver": ReleasedMetadata(
        "Liver", "test/good/img/3_{i}.png", "test/Ungood/img/4_{i}.png", "test/Ungood/label/4_{i}.png", True, "scan",
        "medical",
    ),
    "Retina": ReleasedMetadata(
        "Retina", "test/good/img/15_{i}.png", "test/Ungood/img/11_{i}.png", "test/Ungood/label/11_{i}.png", True,
        "scan", "medical",
    ),
    "headct": ReleasedMetadata(
        "headct", "test/good/1{i:02d}.png", "test/defect/{i:03d}.png", None, False, "scan", "medical"
    ),
    "Colon_colonDB": ReleasedMetadata(
        "Colon_colonDB", None, "images/{i}.png", "masks/{i}.png", True, "colon endoscopy image", "medical"
    ),
    "Colon_clinicDB": ReleasedMetadata(
        "Colon_clinicDB", None, "images/{i}.png", "masks/{i}.png", True, "colon endoscopy image", "medical"
    ),
    "Colon_cvc300": ReleasedMetadata(
        "CVC-300", None, "images/{i}.png", "masks/{i}.png", True, "colon endoscopy image", "medical"
    ),
    "Colon_Kvasir": ReleasedMetadata(
        "Kvasir", None, "images/cju{i}.png", "masks/cju{i}.png", True, "colon endoscopy image", "medical"
    ),
    "Endo": ReleasedMetadata(
        "Endo", None, "test dataset/images/{i}a.jpg", "test dataset/masks/{i}a.jpg", False, "polyp", "medical"
    ),
}


def write_released(root: Path, metadata_dir: Path, name: str, spec: ReleasedMetadata) -> Path:
    """Two normal and two anomalous images (where the set has them) and their full-shot.jsonl, written as the
    released files are: the released key order, its label type, no newline after the last line."""
    lines = []
    one, zero = (1.0, 0.0) if spec.float_labels else (1, 0)
    for index in range(2):
        image = spec.anomalous.format(i=index)
        write_file(root / image, IMAGE)
        record = {"image_path": image, "label": one, "class_name": spec.class_name}
        if spec.mask is not None:
            write_file(root / spec.mask.format(i=index), MASK)
            record["mask_path"] = spec.mask.format(i=index)
        lines.append(json.dumps(record))
        if spec.normal is not None:
            write_file(root / spec.normal.format(i=index), IMAGE)
            lines.append(json.dumps({"image_path": spec.normal.format(i=index), "label": zero, "class_name": spec.class_name}))
    meta = metadata_dir / name / "full-shot.jsonl"
    meta.parent.mkdir(parents=True)
    meta.write_text("\n".join(lines))
    return meta


def test_the_released_metadata_covers_the_paper_benchmarks():
    assert len(RELEASED) == 14


@pytest.mark.parametrize("name", list(RELEASED))
def test_the_released_metadata_loads_with_the_benchmark_prompt_and_domain(tmp_path, name):
    spec = RELEASED[name]
    meta = write_released(tmp_path / "data", tmp_path / "metadata", name, spec)
    dataset = load_benchmark("jsonl", tmp_path / "data", meta_file=meta)

    rows = list(dataset.with_format(None))
    assert sorted(row["label"] for row in rows) == ([0, 0] if spec.normal else []) + [1, 1]
    assert {row["class_name"] for row in rows} == {spec.class_name}
    assert {row["description"] for row in rows} == {spec.description}
    assert {row["domain"] for row in rows} == {spec.domain}
    assert all((row["mask"] is not None) == (row["label"] == 1 and spec.mask is not None) for row in rows)


# moeclip data check: counts, expectations and problems, before a long evaluation


def test_data_check_prints_the_counts_descriptions_and_domains_of_a_sound_copy(tmp_path, capsys):
    REPLICAS["sdd KolektorSDD"].build(tmp_path)
    assert main(["data", "check", "--dataset", "sdd", "--data-root", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert f"sdd test split under {tmp_path}: KolektorParts" in printed
    assert "| sdd | electrical commutators | industrial | 3 | 1 | 1 | - | - |" in printed
    assert "no problems found" in printed


def test_data_check_lists_missing_masks_bad_sizes_missing_classes_and_count_mismatches(tmp_path, capsys):
    REPLICAS["mvtec"].build(tmp_path)
    (tmp_path / "bottle" / "ground_truth" / "broken_large" / "001_mask.png").unlink()
    Image.new("L", (4, 4)).save(tmp_path / "metal_nut" / "ground_truth" / "color" / "000_mask.png")
    assert main(["data", "check", "--dataset", "mvtec", "--data-root", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "| bottle | dark bottle | industrial | 2 | 2 | 1 | 20 / 63 | MISMATCH |" in printed
    assert "3 problem(s), the first 3:" in printed
    assert f"- no mask for anomalous image {tmp_path / 'bottle' / 'test' / 'broken_large' / '001.png'}" in printed
    assert "- 13 MVTec-AD class(es) missing under" in printed and "cable, capsule, carpet" in printed
    assert "000_mask.png is 4x4 but its image" in printed and "000.png is 8x6" in printed
    main(["data", "check", "--dataset", "mvtec", "--data-root", str(tmp_path), "--count-only"])
    assert "2 problem(s)" in (printed := capsys.readouterr().out) and "4x4" not in printed


def test_data_check_compares_pooled_folders_and_released_class_names_with_their_benchmark(tmp_path, capsys):
    REPLICAS["dtd 12 folders"].build(tmp_path / "dtd")
    main(["data", "check", "--dataset", "dtd", "--data-root", str(tmp_path / "dtd"), "--keep-folders"])
    assert "| Woven_001 | Woven | industrial | 1 | 1 | 1 | 201 / 388 (all of Woven) | MISMATCH |" in capsys.readouterr().out

    meta = write_released(tmp_path / "brain", tmp_path / "metadata", "Brain", RELEASED["Brain"])
    assert main(["data", "check", "--dataset", "jsonl", "--data-root", str(tmp_path / "brain"), "--meta-file",
                 str(meta), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == [
        {"class_name": "Brain", "description": "scan", "domain": "medical", "normal": 2, "anomalous": 2, "masks": 2,
         "expected": [640, 3075], "expected_for": "brain", "matches_expected": False}
    ]


def test_data_check_of_a_wrong_root_fails_with_the_layout_message(tmp_path, capsys):
    REPLICAS["liver_ct"].build(tmp_path / "Liver_copy")
    assert main(["data", "check", "--dataset", "liver_ct", "--data-root", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert f"no Liver CT (liver_ct) layout found under {tmp_path}" in error
    assert f"Hint: {tmp_path / 'Liver_copy'} holds the liver_ct layout: use it as the root" in error


def test_data_list_shows_every_benchmark_with_its_layouts_and_sources(capsys):
    assert main(["data", "list", "--sources"]) == 0
    printed = capsys.readouterr().out
    assert "| rsdd | RSDD | industrial | 1 | 387 / 387 | yes | StateFolders |" in printed
    assert "| head_ct | Head CT | medical | 1 | 100 / 100 | yes | StateFolders, KaggleHeadCT, BMADFolders |" in printed
    assert sum(line.startswith("| ") for line in printed.splitlines()) == 22  # the header and 21 benchmarks
    assert "Bayes-PFL" in printed and "AnomalyCLIP generate_dataset_json/tn3k.py" in printed
