"""Benchmark layouts -> datasets.Dataset: reading order, the JSON-lines format, and how bad folders fail.

Every test builds its own tiny benchmark copy in tmp_path (a few 8 x 8 PNGs named as the real
benchmark names them), so the suite needs no data and no network. Each benchmark's real trees are
tests/test_benchmark_replicas.py.
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

from moeclip_hf.data import ROUTES, LayoutNotFoundError, list_benchmarks, load_benchmark

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


def test_list_benchmarks_names_the_paper_benchmarks_the_peers_ones_and_the_meta_file_format():
    paper = ["mvtec", "visa", "btad", "rsdd", "dtd", "brain_mri", "liver_ct", "retina_oct", "head_ct", "colondb",
             "clinicdb", "cvc300", "kvasir", "endo"]
    peers = ["mpdd", "sdd", "dagm", "isic", "tn3k", "br35h", "brainmri_kaggle"]
    assert list_benchmarks() == sorted([*paper, *peers, "jsonl"])


def test_unknown_benchmark_is_refused_with_the_known_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown benchmark 'mvtech'.*'mvtec'"):
        load_benchmark("mvtech", tmp_path)


# Reading order and selection (each benchmark's own tree: tests/test_benchmark_replicas.py)


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


def write_visa(root: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    table = root / "split_csv" / "1cls.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    lines = ["object,split,label,image,mask"] + [",".join(row) for row in rows]
    table.write_text("\n".join(lines) + "\n")
    return root


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
        ('{"image_path": "0.png", "label": 0.5, "class_name": "x"}', "label must be 0 or 1"),
        ('{"image_path": "0.png", "label": "yes", "class_name": "x"}', "label must be 0 or 1"),
        ('{"image_path": "0.png", "label": "1", "class_name": "x"}', "label must be 0 or 1"),
        ('{"image_path": "0.png", "label": true, "class_name": "x"}', "label must be 0 or 1"),
        ('{"image_path": "0.png", "label": 0, "class_name": "x", "domain": "space"}', "domain must be"),
        ('{"image_path": "0.png", "label": 0, "class_name": "x", "description": ""}', "description must be"),
    ],
)
def test_jsonl_malformed_lines_name_the_line(tmp_path, line, message):
    write_image(tmp_path / "0.png")
    (tmp_path / "meta.jsonl").write_text(line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"meta.jsonl line 1: {message}")):
        load_benchmark("jsonl", tmp_path)


def test_jsonl_reads_float_labels_as_the_released_metadata_writes_them(tmp_path):
    write_image(tmp_path / "n.png")
    write_image(tmp_path / "a.png")
    write_mask(tmp_path / "a_mask.png")
    write_jsonl(
        tmp_path,
        [
            {"image_path": "n.png", "label": 0.0, "class_name": "Liver"},
            {"image_path": "a.png", "label": 1.0, "class_name": "Liver", "mask_path": "a_mask.png"},
        ],
    )
    dataset = load_benchmark("jsonl", tmp_path)
    assert column(dataset, "label") == [1, 0]
    assert set(column(dataset, "description")) == {"scan"} and set(column(dataset, "domain")) == {"medical"}


def test_jsonl_description_and_domain_given_by_the_lines_override_the_table(tmp_path):
    for name in ("0", "1", "2"):
        write_image(tmp_path / f"{name}.png")
    write_jsonl(
        tmp_path,
        [
            {"image_path": "0.png", "label": 0, "class_name": "bottle", "description": "green glass bottle"},
            {"image_path": "1.png", "label": 0, "class_name": "bottle"},  # inherits the class's description
            {"image_path": "2.png", "label": 0, "class_name": "Brain", "domain": "industrial", "description": "brain"},
        ],
    )
    dataset = load_benchmark("jsonl", tmp_path)
    assert column(dataset, "class_name") == ["Brain", "bottle", "bottle"]
    assert column(dataset, "description") == ["brain", "green glass bottle", "green glass bottle"]
    assert column(dataset, "domain") == ["industrial", "industrial", "industrial"]


@pytest.mark.parametrize("key", ["description", "domain"])
def test_jsonl_lines_of_one_class_that_disagree_are_refused_naming_both_lines(tmp_path, key):
    write_image(tmp_path / "0.png")
    values = {"description": ("scan", "brain"), "domain": ("medical", "industrial")}[key]
    write_jsonl(tmp_path, [{"image_path": "0.png", "label": 0, "class_name": "x", key: value} for value in values])
    with pytest.raises(ValueError, match=rf"line 2: class 'x' has {key} .* but .*line 1 gives it"):
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


def test_augment_needs_an_image_size(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    with pytest.raises(ValueError, match="image_size"):
        load_benchmark("mvtec", tmp_path, augment=True)
    row = load_benchmark("mvtec", tmp_path, image_size=16, augment=True)[0]
    assert row["pixel_values"].shape == (3, 16, 16)


# Bad folders fail early, by name, and say where to look


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        load_benchmark("mvtec", tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["mvtec", "btad", "dtd", "rsdd", "head_ct", "kvasir", "sdd"])
def test_an_empty_root_names_the_root_the_layouts_tried_and_what_it_holds(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutNotFoundError) as error:
        load_benchmark(name, tmp_path / "empty")
    message = str(error.value)
    assert f"layout found under {tmp_path / 'empty'}." in message
    assert "Layouts tried" in message and "Found there: nothing (it is empty)." in message
    assert [pattern for pattern in (convention.pattern for convention in ROUTES[name]) if pattern not in message] == []


def test_a_wrong_root_says_what_it_found_and_which_layout_that_is(tmp_path):
    make_bmad(tmp_path / "brain", normal=1, anomalous=1)  # a Brain MRI tree given as MVTec-AD
    with pytest.raises(LayoutNotFoundError) as error:
        load_benchmark("mvtec", tmp_path / "brain")
    message = str(error.value)
    assert f"no MVTec-AD (mvtec) layout found under {tmp_path / 'brain'}." in message
    assert "Found there: 1 folder (test)." in message
    assert "holds test/good/img/*, test/Ungood/img/*" in message and "a layout of brain_mri, liver_ct" in message


def test_a_root_one_level_too_high_points_at_the_right_one(tmp_path):
    root = tmp_path / "datasets"
    make_mvtec(root / "mvtec_2019_copy", {"bottle": {"good": 1, "broken_large": 1}})
    make_bmad(root / "Brain", normal=1, anomalous=1)
    with pytest.raises(LayoutNotFoundError) as error:
        load_benchmark("mvtec", root)
    message = str(error.value)
    assert "Found there: 2 folders (Brain, mvtec_2019_copy)." in message
    assert f"Hint: {root / 'mvtec_2019_copy'} holds the mvtec layout: use it as the root" in message


def test_a_root_above_a_download_folder_points_at_the_download(tmp_path):
    for index in range(2):
        write_image(tmp_path / "datasets" / "RSDD" / "Metal15" / "test" / "good" / f"{index}.bmp")
    with pytest.raises(LayoutNotFoundError, match=re.escape(f"Hint: {tmp_path / 'datasets' / 'RSDD'} holds the rsdd")):
        load_benchmark("rsdd", tmp_path / "datasets")
    assert len(load_benchmark("rsdd", tmp_path / "datasets" / "RSDD")) == 2


@pytest.mark.parametrize(("name", "too_deep"), [("mvtec", "bottle"), ("brain_mri", "test")])
def test_a_root_one_level_too_deep_points_at_its_parent(tmp_path, name, too_deep):
    make_mvtec(tmp_path / "mvtec", {"bottle": {"good": 1, "broken_large": 1}})
    make_bmad(tmp_path / "brain_mri", normal=1, anomalous=1)
    root = tmp_path / name / too_deep
    with pytest.raises(LayoutNotFoundError, match=re.escape(f"Hint: {root.parent} holds the {name} layout")):
        load_benchmark(name, root)


def test_a_folder_of_several_datasets_is_read_through_the_benchmark_sub_folder_and_says_so(tmp_path):
    make_mvtec(tmp_path / "MVTec", {"bottle": {"good": 1, "broken_large": 1}})
    make_bmad(tmp_path / "Brain", normal=1, anomalous=1)
    mvtec, brain = load_benchmark("mvtec", tmp_path), load_benchmark("brain_mri", tmp_path)
    assert column(mvtec, "class_name") == ["bottle", "bottle"] and column(brain, "class_name") == ["brain", "brain"]
    assert f"holds no MVTec-AD layout itself; reading its 'MVTec' folder, {tmp_path / 'MVTec'}" in mvtec.info.description


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


def test_anomalous_image_without_mask_is_refused_with_the_expected_mask_path_and_what_is_there(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1, "broken_large": 2}})
    (tmp_path / "bottle" / "ground_truth" / "broken_large" / "001_mask.png").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_benchmark("mvtec", tmp_path)
    message = str(error.value)
    assert f"no mask for anomalous image {tmp_path / 'bottle' / 'test' / 'broken_large' / '001.png'}" in message
    assert "expected " + str(tmp_path / "bottle" / "ground_truth" / "broken_large" / "001_mask.png") in message
    assert "holds 1 file (000_mask.png)" in message


def test_a_polyp_image_without_mask_is_refused_and_every_such_image_counted(tmp_path):
    for index in range(3):
        write_image(tmp_path / "images" / f"{index}.png")
    write_mask(tmp_path / "masks" / "0.png")
    with pytest.raises(FileNotFoundError, match=r"no mask for anomalous image .*1\.png.*\(and 1 more problems"):
        load_benchmark("kvasir", tmp_path)


def test_bmad_without_its_label_folder_is_refused(tmp_path):
    make_bmad(tmp_path, normal=1, anomalous=1, labels=False)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "test" / "Ungood" / "label"))):
        load_benchmark("brain_mri", tmp_path)


def test_head_ct_is_read_without_masks_even_where_a_copy_has_label_folders(tmp_path):
    make_bmad(tmp_path, normal=2, anomalous=2, labels=True)
    dataset = load_benchmark("head_ct", tmp_path)
    assert sorted(column(dataset, "label")) == [0, 0, 1, 1] and column(dataset, "mask") == [None] * 4


def test_visa_without_its_table_or_data_folders_is_refused(tmp_path):
    with pytest.raises(LayoutNotFoundError, match=re.escape("split_csv/1cls.csv")):
        load_benchmark("visa", tmp_path)


def test_file_listed_in_a_table_but_missing_is_named(tmp_path):
    write_visa(tmp_path, [("candle", "test", "normal", "candle/0.JPG", "")])
    with pytest.raises(FileNotFoundError, match=r"1cls\.csv line 2: file not found: .*candle/0\.JPG"):
        load_benchmark("visa", tmp_path)


def test_a_missing_meta_file_lists_the_json_lines_files_there(tmp_path):
    (tmp_path / "Brain").mkdir()
    (tmp_path / "Brain" / "full-shot.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"meta file not found: .*meta\.jsonl; .*Brain/full-shot\.jsonl"):
        load_benchmark("jsonl", tmp_path)


def test_meta_file_only_applies_to_jsonl(tmp_path):
    make_mvtec(tmp_path, {"bottle": {"good": 1}})
    with pytest.raises(ValueError, match="meta_file only applies"):
        load_benchmark("mvtec", tmp_path, meta_file="meta.jsonl")
