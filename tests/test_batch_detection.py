"""`moeclip detect ... --output results.csv`: many images into a table, written as it goes, resumable after a
SIGKILL with exactly the scores of an uninterrupted run, and shared between processes by `accelerate launch`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main
from moeclip_hf.inference.sources import collect_images
from moeclip_hf.inference.table import COLUMNS, DetectionRow, TableFiles, read_rows, truncate_to_rows
from moeclip_hf.testing import tiny_config, tiny_processor

REPOSITORY = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).with_name("stall_detect.py")
#: Seven images in batches of two: [0, 1], [2, 3], [4, 5], [6].
NUM_IMAGES, BATCH_SIZE = 7, 2
#: The batch the killed run is writing when it dies: its first row is written, its second half-written.
KILLED_IN_BATCH = 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    MoECLIPModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Seven images of different sizes in two sub-folders, plus files that are not images."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(NUM_IMAGES):
        path = folder / ("good" if index < 4 else "odd") / f"{index:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40 + 4 * index, 56, 3), dtype=np.uint8)).save(path)
    (folder / "notes.md").write_text("not an image")
    (folder / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(folder / ".hidden" / "thumb.png")
    return folder


def detect(model: Path, *arguments: str) -> int:
    return main(["detect", "--model", str(model), "--class-name", "bottle", "--batch-size", str(BATCH_SIZE),
                 "--device", "cpu", "--quiet", *arguments])  # fmt: skip


def rows_of(table: Path) -> list[dict]:
    """The rows of a table's JSON-lines file (map files are named relative to the table's folder, so the tables
    `results.csv` of two folders compare equal when they hold the same results)."""
    return [json.loads(line) for line in table.with_suffix(".jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, saved_model, image_folder) -> Path:
    table = tmp_path_factory.mktemp("uninterrupted") / "results.csv"
    assert detect(saved_model, str(image_folder), "--output", str(table)) == 0
    return table


# ------------------------------------------------------------------------------------------------ inputs


def test_folders_globs_lists_and_datasets_name_each_image_once_in_a_fixed_order(tmp_path, image_folder):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\n{image_folder}/odd/005.png\n\n{os.path.relpath(image_folder / 'good' / '000.png', tmp_path)}\n")
    items = collect_images([str(image_folder / "odd"), str(image_folder / "good" / "00[12].png"), str(listing)])
    assert [Path(item.key).relative_to(image_folder).as_posix() for item in items] == [
        "odd/004.png", "odd/005.png", "odd/006.png", "good/001.png", "good/002.png", "good/000.png",
    ]  # fmt: skip
    folder = collect_images([str(image_folder)], exclude=[image_folder / "odd"])
    assert [item.key for item in folder] == [str(image_folder / "good" / f"00{index}.png") for index in range(4)]
    assert [item.map_name.split("-")[0] for item in folder] == ["good/000", "good/001", "good/002", "good/003"]
    assert folder[0].map_name == collect_images([folder[0].key])[0].map_name  # whatever else is scored
    assert folder[0].read().size == (56, 40)

    paths = [str(image_folder / "good" / name) for name in ("000.png", "001.png")]
    datasets.Dataset.from_dict({"picture": paths}).cast_column("picture", datasets.Image()).save_to_disk(tmp_path / "ds")
    rows = collect_images(dataset=str(tmp_path / "ds"), image_column="picture")
    assert [item.key for item in rows] == ["000.png", "001.png"]  # the file names the dataset stored
    assert [item.map_name for item in rows] == ["ds/00000000.png", "ds/00000001.png"]
    datasets.Dataset.from_dict({"picture": paths[:1] * 2}).cast_column("picture", datasets.Image()).save_to_disk(tmp_path / "twice")
    assert [item.key for item in collect_images(dataset=str(tmp_path / "twice"), image_column="picture")] == [
        f"{tmp_path / 'twice'}#0", f"{tmp_path / 'twice'}#1",
    ]  # stored names that repeat are no keys: the rows are numbered
    assert np.array_equal(np.asarray(rows[1].read()), np.asarray(Image.open(paths[1])))


def test_inputs_that_hold_no_image_are_named_in_the_error(tmp_path, image_folder):
    with pytest.raises(FileNotFoundError, match="missing: no such image, folder, glob match or list file"):
        collect_images([str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match=r"no image file matches '.*\*\.jpg'"):
        collect_images([str(image_folder / "*.jpg")])
    with pytest.raises(ValueError, match="notes.md is neither an image"):
        collect_images([str(image_folder / "notes.md")])
    (tmp_path / "list.txt").write_text("gone.png\n")
    with pytest.raises(FileNotFoundError, match="list.txt, line 1: no such image file 'gone.png'"):
        collect_images([str(tmp_path / "list.txt")])
    datasets.Dataset.from_dict({"text": ["a"]}).save_to_disk(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"has no column 'image'; its columns: \['text'\]"):
        collect_images(dataset=str(tmp_path / "ds"))


def test_the_overlay_run_sends_folders_and_table_options_to_a_table(tmp_path, saved_model, image_folder, capsys):
    assert main(["detect", "--model", str(saved_model), str(image_folder), "--class-name", "bottle",
                 "--output", str(tmp_path / "overlays")]) == 1  # fmt: skip
    assert "is a folder, list or pattern: score its images into a table with --output results.csv" in capsys.readouterr().err
    assert main(["detect", "--model", str(saved_model), str(image_folder / "good" / "000.png"), "--class-name", "bottle",
                 "--resume", "--output", str(tmp_path / "overlays")]) == 1  # fmt: skip
    assert "--resume need a result table: pass --output results.csv" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ the table


def test_the_pipeline_scores_a_batch_of_images_of_different_sizes(saved_model, image_folder):
    pictures = [item.read() for item in collect_images([str(image_folder)])[:3]]
    batched = pipeline("zero-shot-anomaly-detection", model=str(saved_model), batch_size=3)(pictures, class_name="bottle")
    single = pipeline("zero-shot-anomaly-detection", model=str(saved_model))
    for picture, result in zip(pictures, batched, strict=True):
        assert result["anomaly_map"].size == picture.size
        assert result["score"] == pytest.approx(single(picture, class_name="bottle")["score"], abs=1e-5)


def test_a_table_holds_one_row_per_image_in_input_order_with_its_map(uninterrupted, image_folder):
    files = TableFiles(uninterrupted)
    rows = read_rows(files.jsonl)[0]
    assert [Path(row.path).relative_to(image_folder).as_posix() for row in rows] == [
        f"{'good' if index < 4 else 'odd'}/{index:03d}.png" for index in range(NUM_IMAGES)
    ]
    assert files.csv.read_text() == ",".join(COLUMNS) + "\n" + "".join(row.to_csv() for row in rows)
    for row in rows:
        assert row.verdict == ("anomalous" if row.score >= row.threshold else "normal") and row.threshold == 0.5
        with Image.open(files.folder / row.map_file) as anomaly_map:  # grayscale, the image's size
            assert (anomaly_map.mode, anomaly_map.size) == ("L", Image.open(row.path).size)
    settings = json.loads(files.settings.read_text())
    assert settings["batch_size"] == BATCH_SIZE and settings["class_name"] == "bottle" and len(settings["model_sha256"]) == 64
    assert not files.parts()


def test_a_dataset_is_scored_row_by_row_like_the_same_files(tmp_path, saved_model, image_folder, uninterrupted):
    paths = [str(image_folder / "good" / name) for name in ("000.png", "001.png")]
    datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image()).save_to_disk(tmp_path / "ds")
    table = tmp_path / "rows.jsonl"
    assert detect(saved_model, "--from-dataset", str(tmp_path / "ds"), "--output", str(table)) == 0
    rows = read_rows(table)[0]
    assert [row.path for row in rows] == ["000.png", "001.png"]  # the file names the dataset stored
    assert [row.map_file for row in rows] == ["rows_maps/ds/00000000.png", "rows_maps/ds/00000001.png"]
    # The same pictures in the same batch as the folder's first batch: the same floats.
    assert [row.score for row in rows] == [row.score for row in read_rows(uninterrupted.with_suffix(".jsonl"))[0][:2]]


def test_a_table_is_not_written_over_and_resumes_only_with_the_same_settings(tmp_path, saved_model, image_folder, uninterrupted, capsys):
    table = tmp_path / "results.csv"
    for name in ("results.csv", "results.jsonl", "results.settings.json"):
        shutil.copy(uninterrupted.with_name(name), tmp_path / name)
    assert detect(saved_model, str(image_folder), "--output", str(table)) == 1
    assert "results.jsonl exists: pass --resume to continue that run, or --overwrite" in capsys.readouterr().err
    assert detect(saved_model, str(image_folder), "--output", str(table), "--resume", "--threshold", "0.7") == 1
    assert "threshold: 0.5 then, 0.7 now" in capsys.readouterr().err
    assert detect(saved_model, str(image_folder), "--output", str(table), "--resume") == 0  # nothing left to do
    assert "scored now 0, already written 7" in capsys.readouterr().err
    assert rows_of(table) == rows_of(uninterrupted)


def test_an_unreadable_image_gets_a_row_saying_why_and_is_tried_again_on_resume(
    tmp_path, saved_model, image_folder, uninterrupted, capsys
):
    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    broken = folder / "good" / "002.png"  # in the second batch, [002, 003]
    picture = broken.read_bytes()
    broken.write_bytes(b"not an image")
    table = tmp_path / "results.csv"
    assert detect(saved_model, str(folder), "--output", str(table)) == 0  # the run goes on past it
    assert "7 images: " in (err := capsys.readouterr().err) and ", 1 unreadable;" in err and "not a decodable image" in err
    rows = read_rows(table.with_suffix(".jsonl"))[0]
    assert [Path(row.path).name for row in rows] == [f"{index:03d}.png" for index in range(NUM_IMAGES)]
    assert (rows[2].score, rows[2].verdict, rows[2].threshold, rows[2].map_file) == (None, "unreadable", None, "")
    assert rows[2].error == f"cannot read image {broken}: not a decodable image"
    assert f"{broken},,unreadable,,,cannot read image" in table.read_text()
    expected = read_rows(uninterrupted.with_suffix(".jsonl"))[0]
    others = [0, 1, 4, 5, 6]  # the batches without the broken file: the uninterrupted floats
    assert [rows[index].score for index in others] == [expected[index].score for index in others]
    assert rows[3].score == pytest.approx(expected[3].score, abs=1e-6)  # scored in a batch of one

    broken.write_bytes(picture)  # repaired: --resume scores it, in its whole batch
    assert detect(saved_model, str(folder), "--output", str(table), "--resume") == 0
    assert "scored now 1, already written 6" in capsys.readouterr().err
    resumed = read_rows(table.with_suffix(".jsonl"))[0]
    assert len(resumed) == NUM_IMAGES and resumed[2].score == expected[2].score and resumed[2].error == ""
    assert [row.verdict for row in resumed] == [row.verdict for row in expected]


def test_only_the_last_line_of_a_table_may_be_cut_short(tmp_path):
    row = DetectionRow("a.png", 0.25, "normal", 0.5, "")
    path = tmp_path / "t.jsonl"
    path.write_text(row.to_json() + row.to_json()[:20])
    assert read_rows(path) == ([row], len(row.to_json()))
    assert truncate_to_rows(path) == [row] and path.read_text() == row.to_json()
    path.write_text(row.to_json()[:20] + "\n" + row.to_json())
    with pytest.raises(ValueError, match="t.jsonl, line 1: not a JSON object"):
        read_rows(path)


def test_rows_round_trip_through_json_and_only_unreadable_rows_lack_a_score(tmp_path):
    unreadable = DetectionRow.unreadable("b.png", "cannot read image b.png: it is an empty file")
    assert DetectionRow.from_json(unreadable.to_json()) == unreadable
    assert unreadable.to_csv() == "b.png,,unreadable,,,cannot read image b.png: it is an empty file\n"
    for values in ({"score": None}, {"verdict": "unreadable"}):  # a score without a verdict, or the reverse
        line = json.dumps({**json.loads(DetectionRow("a.png", 0.25, "normal", 0.5, "").to_json()), **values})
        with pytest.raises(ValueError, match="values of the wrong kind"):
            DetectionRow.from_json(line)


# ------------------------------------------------------------------------------------------------ SIGKILL


def test_a_run_killed_mid_row_resumes_to_every_image_once_with_the_uninterrupted_scores(
    tmp_path, saved_model, image_folder, uninterrupted, capsys
):
    table, ready, log = tmp_path / "results.csv", tmp_path / "ready", tmp_path / "detect.log"
    command = [sys.executable, str(HELPER), str(KILLED_IN_BATCH), str(ready), str(image_folder), "--model",
               str(saved_model), "--class-name", "bottle", "--batch-size", str(BATCH_SIZE), "--device", "cpu",
               "--quiet", "--output", str(table)]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert process.poll() is None, f"the run ended (code {process.returncode}) before the stall:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the run did not reach the stalled write in 300 s"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # Killed inside a row: batch 0 whole, batch 1's first row, half a line of its second.
    lines = table.with_suffix(".jsonl").read_text().split("\n")
    assert len(lines) == BATCH_SIZE * KILLED_IN_BATCH + 2 and lines[-1] and not lines[-1].endswith("}")

    assert detect(saved_model, str(image_folder), "--output", str(table), "--resume") == 0
    already = BATCH_SIZE * KILLED_IN_BATCH + 1
    assert f"scored now {NUM_IMAGES - already}, already written {already}" in capsys.readouterr().err
    assert rows_of(table) == rows_of(uninterrupted)  # every image once, in order, the same scores to the bit
    assert table.read_text() == uninterrupted.read_text()


def test_a_sharded_run_killed_early_is_finished_by_one_process(tmp_path, saved_model, image_folder, uninterrupted):
    """Rows left in the part file of a killed two-process run are kept, the table completed and merged."""
    table = tmp_path / "results.csv"
    shutil.copy(uninterrupted.with_name("results.settings.json"), tmp_path)
    kept = read_rows(uninterrupted.with_suffix(".jsonl"))[0][4:6]  # what process 1 had written of its share
    part = TableFiles(table).part(1, 2)
    part.write_text("".join(row.to_json() for row in kept) + kept[0].to_json()[:30])
    assert detect(saved_model, str(image_folder), "--output", str(table), "--resume") == 0
    assert rows_of(table) == rows_of(uninterrupted)
    assert not part.exists()


# ------------------------------------------------------------------------------------------------ processes


def test_two_processes_started_by_accelerate_write_the_single_process_table(tmp_path, saved_model, image_folder, uninterrupted):
    table = tmp_path / "results.csv"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               "-m", "moeclip_hf.cli", "detect", str(image_folder), "--model", str(saved_model), "--class-name",
               "bottle", "--batch-size", str(BATCH_SIZE), "--quiet", "--output", str(table)]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPOSITORY)}
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    # Batches [0, 1], [2, 3] for the first process, [4, 5], [6] for the second, merged in input order.
    assert "scored now 7 (4, 3 by process), already written 0" in finished.stderr
    assert rows_of(table) == rows_of(uninterrupted)
    assert table.read_text() == uninterrupted.read_text()
    assert not TableFiles(table).parts()
