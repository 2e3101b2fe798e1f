"""`moeclip demo`: generate, evaluate, train, evaluate, report; offline, on the embedded default model."""

import json

import pytest
import torch
from PIL import Image

from moeclip_hf.cli import main
from moeclip_hf.data.synthetic import CATEGORIES
from moeclip_hf.demo.run import run_demo, showcase_images
from moeclip_hf.demo.settings import HEADLINE_METRICS, PANEL_HEIGHT, SPLITS, STAGES, DemoSettings
from moeclip_hf.modeling.modeling_moeclip import MoECLIPModel
from moeclip_hf.presets import demo_config, tiny_processor


def test_a_short_demo_writes_the_table_the_overlays_and_the_report(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path), "--steps", "3", "--images-per-category", "2", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| seen_heldout | before |" in printed and "| unseen | after |" in printed
    for split, categories in (("seen_heldout", DemoSettings().seen), ("unseen", DemoSettings().unseen)):
        assert f"Per class after training, {split}:" in printed
        assert all(f"| {category} |" in printed for category in categories)
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
    assert picture.width == 3 * picture.height and picture.height >= PANEL_HEIGHT
    assert "not pretrained" in report and "Why these seen categories" in report
    for split in SPLITS:
        assert (tmp_path / "tables" / f"results_{split}.csv").exists()
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_the_default_demo_learns_the_seen_categories(tmp_path):
    """The learning claim of the demo (part of the default run; `-m "not slow"` skips it): with the defaults,
    pixel AUROC on held-out images of the seen categories reaches 0.90 and gains at least 0.25 over the
    untrained model."""
    result = run_demo(DemoSettings(output_dir=tmp_path, progress=False))
    assert result.metrics["seen_heldout"]["after"]["pixel_auroc"] >= 0.90
    assert result.gain("seen_heldout", "pixel_auroc") >= 0.25


def anomaly_direction_cosines(text_initializer_factor: float):
    """Pairwise cosines of the seen classes' `T_A - T_N` for the demo model drawn from seed 0."""
    torch.manual_seed(0)
    model = MoECLIPModel(demo_config(text={"initializer_factor": text_initializer_factor})).eval()
    tokens = tiny_processor(64).tokenize_prompts(list(DemoSettings().seen), "mvtec")
    with torch.no_grad():
        text = model.encode_prompts(tokens["prompt_input_ids"], tokens["prompt_attention_mask"])
    directions = torch.nn.functional.normalize(text[:, 1] - text[:, 0], dim=-1)
    cosines = directions @ directions.T
    return cosines[~torch.eye(len(cosines), dtype=torch.bool)]


def test_the_embedded_text_side_gives_each_seen_class_its_own_anomaly_direction():
    """The figures of `demo_config`'s docstring: mean pairwise cosine 0.78 at CLIP's default init, 0.40 at factor 10."""
    default_init, demo_init = anomaly_direction_cosines(1.0), anomaly_direction_cosines(10.0)
    assert default_init.mean() > 0.75  # CLIP's default init: nearly one shared direction
    assert demo_init.max() < 0.65 and demo_init.mean() < 0.45
    assert demo_init.mean() < default_init.mean() / 1.9


def test_overlays_take_the_categories_and_their_defects_in_turn(tmp_path):
    for category in ("bolt", "cable"):
        for kind in ("good", "crack", "hole"):
            for number in range(2):
                path = tmp_path / category / "test" / kind / f"{number:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    picked = [path.relative_to(tmp_path).as_posix() for path in showcase_images(tmp_path, 5)]
    assert picked == [
        "bolt/test/crack/000.png",
        "cable/test/hole/000.png",
        "bolt/test/hole/000.png",
        "cable/test/crack/000.png",
        "bolt/test/crack/001.png",
    ]
    assert len(showcase_images(tmp_path, 100)) == 8


def test_demo_trains_on_the_categories_named_by_seen_and_tests_on_the_others(tmp_path):
    code = main(["demo", "--output", str(tmp_path), "--steps", "2", "--images-per-category", "2", "--quiet",
                 "--seen", "stripes", "washer"])
    assert code == 0
    assert sorted(path.name for path in (tmp_path / "data" / "train").iterdir()) == ["stripes", "washer"]
    unseen = sorted(path.name for path in (tmp_path / "data" / "unseen").iterdir())
    assert unseen == sorted(set(CATEGORIES) - {"stripes", "washer"})
    assert "Why these seen categories" not in (tmp_path / "report.md").read_text()


def test_demo_refuses_a_seen_list_that_leaves_nothing_unseen(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--seen", *CATEGORIES]) == 1
    assert "--seen must leave at least one category unseen" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
