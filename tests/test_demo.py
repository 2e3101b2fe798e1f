"""`moeclip demo`: generate, evaluate, train, evaluate, report; offline, on the embedded default model."""

import json

import pytest
from PIL import Image

from moeclip_hf.cli import main
from moeclip_hf.demo import HEADLINE_METRICS, SPLITS, STAGES, DemoSettings, run_demo


def test_a_short_demo_writes_the_table_the_overlays_and_the_report(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path), "--steps", "3", "--images-per-category", "2", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| seen_heldout | before |" in printed and "| unseen | after |" in printed
    assert "not pretrained" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == set(SPLITS)
    for split in SPLITS:
        assert set(metrics[split]) == set(STAGES)
        for stage in STAGES:
            assert set(metrics[split][stage]) == set(HEADLINE_METRICS)
            assert 0.0 <= metrics[split][stage]["pixel_auroc"] <= 1.0
    report = (tmp_path / "report.md").read_text()
    overlays = sorted((tmp_path / "overlays").rglob("*.png"))
    assert overlays and all(f"]({path.relative_to(tmp_path).as_posix()})" in report for path in overlays)
    picture = Image.open(overlays[0])
    assert picture.width == 3 * picture.height
    assert "not pretrained" in report
    for split in SPLITS:
        assert (tmp_path / "tables" / f"results_{split}.csv").exists()
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_the_default_demo_learns_the_seen_categories(tmp_path):
    """The learning claim of the demo (run with `python -m pytest -m slow`): with the defaults, pixel AUROC on
    held-out images of the seen categories reaches 0.90 and gains at least 0.25 over the untrained model."""
    result = run_demo(DemoSettings(output_dir=tmp_path, progress=False))
    assert result.metrics["seen_heldout"]["after"]["pixel_auroc"] >= 0.90
    assert result.gain("seen_heldout", "pixel_auroc") >= 0.25
