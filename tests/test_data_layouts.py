"""Benchmark layouts -> datasets.Dataset: what each layout reads, and how bad folders fail.

Every test builds its own tiny benchmark copy in tmp_path (a few 8 x 8 PNGs named as the real
benchmark names them), so the suite needs no data and no network.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moeclip_hf.data import list_benchmarks, load_benchmark

SIZE = (8, 8)


def write_image(path: Path, color: tuple[int, int, int] = (120, 80, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", SIZE, color).save(path)
    return path


def write_mask(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(SIZE[::-1], dtype=np.uint8)
    mask[2:5, 3:6] = 255
    Image.fromarray(mask).save(path)
    return path


def make_mvtec(
    root: Path,
    classes: dict[str, dict[str, int]],
    normal: str = "good",
    mask_name: str = "{}_mask.png",
    suffix: str = ".png",
) -> Path:
    """`classes`: class -> {defect folder -> image count}; masks for every non-normal image."""
    for class_name, folders in classes.items():
        for folder, count in folders.items():
            for index in range(count):
                write_image(root / class_name / "test" / folder / f"{index:03d}{suffix}")
                if folder != normal:
                    write_mask(root / class_name / "ground_truth" / folder / mask_name.format(f"{index:03d}"))
    return root


def make_bmad(root: Path, normal: int, anomalous: int, labels: bool = True) -> Path:
    for index in range(normal):
        write_image(root / "test" / "good" / "img" / f"{index}.png")
    for index in range(anomalous):
        write_image(root / "test" / "Ungood" / "img" / f"{index}.png")
        if labels:
            write_mask(root / "test" / "Ungood" / "label" / f"{index}.png")
    return root


def column(dataset, name):
    return [row[name] for row in dataset]


# The registry


def test_list_benchmarks_names_the_fourteen_benchmarks_and_the_meta_file_format():
    assert list_benchmarks() == sorted(
        [
            "mvtec",
            "visa",
            "btad",
            "rsdd",
            "dtd",
            "brain_mri",
            "liver_ct",
            "retina_oct",
            "head_ct",
            "colondb",
            "clinicdb",
            "cvc300",
            "kvasir",
            "endo",
            "jsonl",
        ]
    )


def test_unknown_benchmark_is_refused_with_the_known_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown benchmark 'mvtech'.*'mvtec'"):
        load_benchmark("mvtech", tmp_path)


# One test per layout: counts, labels, classes, descriptions, domain, masks


def test_mvtec_reads_classes_sorted_with_good_as_normal_and_masks_for_defects(tmp_path):
    make_mvtec(tmp_path, {"carpet": {"good": 1, "hole": 1}, "bottle": {"good": 2, "broken_large": 1}})
    dataset = load_benchmark("mvtec", tmp_path)

    assert len(dataset) == 5
    assert column(dataset, "class_name") == ["bottle"] * 3 + ["carpet"] * 2
    assert column(dataset, "label") == [1, 0, 0, 0, 1]  # sorted paths: broken_large/ < good/ < hole/
    assert column(dataset, "description") == ["dark bottle"] * 3 + ["gray carpet"] * 2
    assert set(column(dataset, "domain")) == {"industrial"}
    row = dataset[0]
    assert row["path"] == str(tmp_path / "bottle" / "test" / "broken_large" / "000.png")
    assert row["image"].mode == "RGB" and row["image"].size == SIZE
    assert row["mask"].mode == "L" and set(np.unique(np.asarray(row["mask"]))) == {0, 255}
    assert dataset[1]["mask"] is None


def test_mvtec_classes_argument_selects_and_sorts(tmp_path):
    make_mvtec(tmp_path, {name: {"good": 1} for name in ("zipper", "bottle", "cable")})
    assert column(load_benchmark("mvtec", tmp_path, classes="cable"), "class_name") == ["cable"]
    assert column(load_benchmark("mvtec", tmp_path, classes=["zipper", "bottle"]), "class_name") == ["bottle", "zipper"]


def test_btad_reads_ok_as_normal_bmp_images_and_same_name_png_masks(tmp_path):
    make_mvtec(
        tmp_path, {"01": {"ok": 2, "ko": 1}, "03": {"ok": 1, "ko": 2}}, normal="ok", mask_name="{}.png", suffix=".bmp"
    )
    dataset = load_benchmark("btad", tmp_path)

    assert column(dataset, "class_name") == ["01"] * 3 + ["03"] * 3
    assert column(dataset, "label") == [1, 0, 0, 1, 1, 0]
    assert dataset[0]["description"].startswith("bright concentric rings")
    assert dataset[0]["path"].endswith(os.path.join("01", "test", "ko", "000.bmp"))
    assert dataset[0]["mask"] is not None and dataset[1]["mask"] is None


@pytest.mark.parametrize("nested", [True, False], ids=["root/rsdd/test", "root/test"])
def test_rsdd_is_the_mvtec_layout_with_the_single_class_rsdd(tmp_path, nested):
    class_folder = tmp_path / "rsdd" if nested else tmp_path
    for index in range(2):
        write_image(class_folder / "test" / "good" / f"{index}.png")
        write_image(class_folder / "test" / "defect" / f"{index}.png")
        write_mask(class_folder / "ground_truth" / "defect" / f"{index}_mask.png")
    dataset = load_benchmark("rsdd", tmp_path)

    assert len(dataset) == 4 and sorted(column(dataset, "label")) == [0, 0, 1, 1]
    assert set(column(dataset, "class_name")) == {"rsdd"}
    assert set(column(dataset, "description")) == {"metal"}
    assert set(column(dataset, "domain")) == {"industrial"}


def test_dtd_synthetic_describes_a_class_by_its_texture_family(tmp_path):
    make_mvtec(tmp_path, {"Woven_001": {"good": 1, "bad": 1}, "Blotchy_099": {"good": 1}})
    dataset = load_benchmark("dtd", tmp_path)

    assert column(dataset, "class_name") == ["Blotchy_099", "Woven_001", "Woven_001"]
    assert column(dataset, "description") == ["Blotchy", "Woven", "Woven"]
    assert column(dataset, "label") == [0, 1, 0]


def write_visa(root: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    table = root / "split_csv" / "1cls.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    lines = ["object,split,label,image,mask"] + [",".join(row) for row in rows]
    table.write_text("\n".join(lines) + "\n")
    return root


def test_visa_reads_the_split_table_relative_to_the_root(tmp_path):
    rows = []
    for name in ("pcb1", "candle"):
        for split in ("train", "test"):
            image = f"{name}/Data/Images/Normal/{split}0.JPG"
            write_image(tmp_path / image)
            rows.append((name, split, "normal", image, ""))
        image, mask = f"{name}/Data/Images/Anomaly/0.JPG", f"{name}/Data/Masks/Anomaly/0.png"
        write_image(tmp_path / image)
        write_mask(tmp_path / mask)
        rows.append((name, "test", "anomaly", image, mask))
    write_visa(tmp_path, rows)

    test = load_benchmark("visa", tmp_path)
    assert column(test, "class_name") == ["candle", "candle", "pcb1", "pcb1"]
    assert column(test, "label") == [1, 0, 1, 0]
    assert column(test, "description")[2] == "dual ultrasonic distance sensor pcb module"
    assert test[0]["mask"] is not None and test[1]["mask"] is None
    train = load_benchmark("visa", tmp_path, split="train")
    assert column(train, "label") == [0, 0]


@pytest.mark.parametrize(
    ("name", "class_name"), [("brain_mri", "brain"), ("liver_ct", "liver"), ("retina_oct", "retina")]
)
def test_bmad_sets_read_good_and_ungood_with_same_name_labels(tmp_path, name, class_name):
    make_bmad(tmp_path, normal=2, anomalous=3)
    dataset = load_benchmark(name, tmp_path)

    assert len(dataset) == 5 and sorted(column(dataset, "label")) == [0, 0, 1, 1, 1]
    assert set(column(dataset, "class_name")) == {class_name}
    assert set(column(dataset, "description")) == {"scan"}
    assert set(column(dataset, "domain")) == {"medical"}
    for row, stored in zip(dataset, dataset.with_format(None), strict=True):
        assert (row["mask"] is not None) == (row["label"] == 1)
        if row["label"] == 1:
            assert Path(stored["mask"]["path"]) == tmp_path / "test" / "Ungood" / "label" / Path(row["path"]).name


def test_head_ct_has_image_labels_only(tmp_path):
    make_bmad(tmp_path, normal=2, anomalous=2, labels=False)
    dataset = load_benchmark("head_ct", tmp_path)

    assert sorted(column(dataset, "label")) == [0, 0, 1, 1]
    assert column(dataset, "mask") == [None] * 4
    assert set(column(dataset, "class_name")) == {"head_ct"}
    assert set(column(dataset, "domain")) == {"medical"}


COLON_SETS = [
    ("colondb", "colon endoscopy image"),
    ("clinicdb", "colon endoscopy image"),
    ("cvc300", "colon endoscopy image"),
    ("kvasir", "colon endoscopy image"),
    ("endo", "polyp"),
]


@pytest.mark.parametrize(("name", "description"), COLON_SETS)
@pytest.mark.parametrize("layout", ["bmad", "images_masks"])
def test_colon_sets_are_anomalous_only_in_either_layout(tmp_path, name, description, layout):
    if layout == "bmad":
        make_bmad(tmp_path, normal=0, anomalous=3)
    else:
        for index in range(3):
            write_image(tmp_path / "images" / f"{index}.png")
            write_mask(tmp_path / "masks" / f"{index}.png")
    dataset = load_benchmark(name, tmp_path)

    assert column(dataset, "label") == [1, 1, 1]
    assert all(mask is not None for mask in column(dataset, "mask"))
    assert set(column(dataset, "class_name")) == {name}
    assert set(column(dataset, "description")) == {description}
    assert set(column(dataset, "domain")) == {"medical"}


def write_jsonl(root: Path, records: list[dict], name: str = "meta.jsonl") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


def test_jsonl_reads_one_sample_a_line_and_describes_known_classes(tmp_path):
    write_image(tmp_path / "a" / "0.png")
    write_image(tmp_path / "a" / "1.png")
    write_mask(tmp_path / "a" / "1_mask.png")
    write_image(tmp_path / "b" / "0.png")
    write_image(tmp_path / "c" / "0.png")
    write_jsonl(
        tmp_path,
        [
            {"image_path": "a/1.png", "mask_path": "a/1_mask.png", "label": 1, "class_name": "bottle"},
            {"image_path": "a/0.png", "mask_path": "", "label": 0, "class_name": "bottle"},
            {"image_path": "b/0.png", "mask_path": None, "label": 0, "class_name": "brain"},
            {"image_path": "c/0.png", "label": 0, "class_name": "my_part", "domain": "medical"},
        ],
    )
    dataset = load_benchmark("jsonl", tmp_path)

    assert column(dataset, "class_name") == ["bottle", "bottle", "brain", "my_part"]
    assert column(dataset, "label") == [0, 1, 0, 0]
    assert column(dataset, "description") == ["dark bottle", "dark bottle", "scan", "my part"]
    assert column(dataset, "domain") == ["industrial", "industrial", "medical", "medical"]
    assert [mask is not None for mask in column(dataset, "mask")] == [False, True, False, False]


def test_jsonl_meta_file_argument_and_split_key(tmp_path):
    write_image(tmp_path / "0.png")
    write_image(tmp_path / "1.png")
    write_jsonl(
        tmp_path,
        [
            {"image_path": "0.png", "label": 0, "class_name": "x", "split": "train"},
            {"image_path": "1.png", "label": 0, "class_name": "x"},
        ],
        name="lists/all.jsonl",
    )

    assert len(load_benchmark("jsonl", tmp_path, meta_file="lists/all.jsonl")) == 1
    assert len(load_benchmark("jsonl", tmp_path, split="train", meta_file=tmp_path / "lists" / "all.jsonl")) == 2


@pytest.mark.parametrize("escape", ["../outside.png", "ABSOLUTE", "link/outside.png"])
def test_jsonl_paths_that_escape_the_root_are_refused(tmp_path, escape):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_image(outside / "outside.png")
    write_image(tmp_path / "outside.png")
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    path = str(outside / "outside.png") if escape == "ABSOLUTE" else escape
    write_jsonl(root, [{"image_path": path, "label": 0, "class_name": "x"}])

    with pytest.raises(ValueError, match=r"escapes the root|is absolute") as error:
        load_benchmark("jsonl", root)
    assert path in str(error.value) and "meta.jsonl line 1" in str(error.value)


def test_visa_table_paths_that_escape_the_root_are_refused(tmp_path):
    write_image(tmp_path / "secret.png")
    root = write_visa(tmp_path / "visa", [("candle", "test", "normal", "../secret.png", "")])
    with pytest.raises(ValueError, match=r"'\.\./secret\.png' escapes the root"):
        load_benchmark("visa", root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"label": 0, "class_name": "x"}', "missing key"),
        ('{"image_path": "0.png", "label": 2, "class_name": "x"}', "label must be 0 or 1"),
        ('{"image_path": "0.png", "label": 0, "class_name": "x", "domain": "space"}', "domain must be"),
    ],
)
def test_jsonl_malformed_lines_name_the_line(tmp_path, line, message):
    write_image(tmp_path / "0.png")
    (tmp_path / "meta.jsonl").write_text(line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"meta.jsonl line 1: {message}")):
        load_benchmark("jsonl", tmp_path)


# Tensors for training and evaluation


def test_image_size_gives_clip_tensors_and_zero_masks_for_normal_images(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1, "broken_large": 1}})
    dataset = load_benchmark("mvtec", tmp_path, image_size=16)

    anomalous, normal = dataset[0], dataset[1]
    assert anomalous["pixel_values"].shape == (3, 16, 16) and anomalous["pixel_values"].dtype == torch.float32
    assert anomalous["mask"].shape == (1, 16, 16) and anomalous["mask"].dtype == torch.float32
    assert anomalous["mask"].sum() > 0 and set(anomalous["mask"].unique().tolist()) == {0.0, 1.0}
    assert normal["mask"].abs().sum() == 0
    assert {"label", "class_name", "description", "domain", "path"} <= set(anomalous)
    assert "image" not in anomalous

    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["pixel_values"].shape == (2, 3, 16, 16) and batch["label"].tolist() == [1, 0]


# Bad folders fail early, by name


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        load_benchmark("mvtec", tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["mvtec", "btad", "dtd", "rsdd"])
def test_root_without_classes_is_refused(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"no {name} classes.*{re.escape(str(tmp_path))}"):
        load_benchmark(name, tmp_path)


def test_class_without_images_is_refused_by_name(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    (tmp_path / "cable" / "test" / "good").mkdir(parents=True)
    with pytest.raises(ValueError, match="class 'cable' has no images"):
        load_benchmark("mvtec", tmp_path)


def test_class_without_the_split_folder_is_refused_by_path(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "bottle" / "train"))):
        load_benchmark("mvtec", tmp_path, split="train")


def test_unknown_classes_are_refused_with_the_available_ones(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    with pytest.raises(ValueError, match=r"unknown mvtec class\(es\) \['bottel'\].*available: \['bottle'\]"):
        load_benchmark("mvtec", tmp_path, classes=["bottel"])


def test_anomalous_image_without_mask_is_refused_with_the_expected_mask_path(tmp_path):
    write_image(tmp_path / "bottle" / "test" / "broken_large" / "000.png")
    with pytest.raises(FileNotFoundError, match=re.escape("broken_large/000_mask.png")):
        load_benchmark("mvtec", tmp_path)


def test_bmad_without_its_label_folder_is_refused(tmp_path):
    make_bmad(tmp_path, normal=1, anomalous=1, labels=False)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "test" / "Ungood" / "label"))):
        load_benchmark("brain_mri", tmp_path)


def test_visa_without_its_table_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("split_csv/1cls.csv")):
        load_benchmark("visa", tmp_path)


def test_file_listed_in_a_table_but_missing_is_named(tmp_path):
    write_visa(tmp_path, [("candle", "test", "normal", "candle/0.JPG", "")])
    with pytest.raises(FileNotFoundError, match=r"1cls\.csv line 2: file not found: .*candle/0\.JPG"):
        load_benchmark("visa", tmp_path)


def test_meta_file_only_applies_to_jsonl(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    with pytest.raises(ValueError, match="meta_file only applies"):
        load_benchmark("mvtec", tmp_path, meta_file="meta.jsonl")
