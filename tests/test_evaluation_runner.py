"""The benchmark runner and `moeclip evaluate`: per-class tables in Markdown, CSV and JSON."""

import csv
import json

import pytest
import torch

from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main
from moeclip_hf.data import load_benchmark
from moeclip_hf.data.synthetic import generate
from moeclip_hf.evaluation.accumulator import ClassMetricAccumulator
from moeclip_hf.evaluation.runner import evaluate_dataset, mean_over_classes
from moeclip_hf.modeling.maps import image_anomaly_score, protocol_anomaly_map
from moeclip_hf.testing import tiny_config, tiny_processor


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, categories=["stripes", "tablet"], images_per_category=4, seed=0, image_size=64)
    return root


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    MoECLIPModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def test_evaluate_writes_one_row_per_class_plus_the_mean_in_three_formats(saved_model, synthetic_root, tmp_path, capsys):
    output = tmp_path / "results"
    code = main(["evaluate", "--model", str(saved_model), "--dataset", "mvtec", "--data-root", str(synthetic_root),
                 "--output", str(output), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| stripes |" in printed and "| tablet |" in printed and "**mean**" in printed
    assert "| paper (Tab. 1) | 93.9 | 96.8 |" in printed
    with (output / "results_mvtec.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == ["stripes", "tablet", "mean"]
    payload = json.loads((output / "results.json").read_text())
    classes = payload["datasets"]["mvtec"]["classes"]
    assert set(classes) == {"stripes", "tablet"}
    mean = payload["datasets"]["mvtec"]["mean"]
    assert mean["image_auroc"] == pytest.approx((classes["stripes"]["image_auroc"] + classes["tablet"]["image_auroc"]) / 2)
    assert float(rows[-1]["pixel_auroc"]) == pytest.approx(mean["pixel_auroc"], abs=1e-6)
    assert "| **mean** |" in (output / "results.md").read_text()


def test_the_moeclip_protocol_normalises_per_class_and_fuses_scores(saved_model, synthetic_root):
    model = MoECLIPModel.from_pretrained(saved_model).eval()
    processor = tiny_processor()
    dataset = load_benchmark("mvtec", synthetic_root, classes=["tablet"], image_size=64)
    result = evaluate_dataset(model, processor, dataset, "mvtec", protocol="moeclip", batch_size=3, progress=False)
    rows = [dataset[index] for index in range(len(dataset))]
    pixel_values = torch.stack([row["pixel_values"] for row in rows])
    prompts = processor.tokenize_prompts(["tablet"], dataset="mvtec")
    with torch.no_grad():
        text = model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"]).expand(len(rows), -1, -1)
        out = model(pixel_values=pixel_values, text_embeds=text)
    expected = ClassMetricAccumulator()
    expected.update(
        image_anomaly_score(out.image_logits),
        torch.tensor([row["label"] for row in rows]),
        protocol_anomaly_map(out.patch_logits.flatten(1, 2), 64, 7, 1.0),
        torch.stack([row["mask"][0] > 0.5 for row in rows]),
    )
    assert result.classes["tablet"] == pytest.approx(expected.compute(normalize_maps=True, score_fusion_weight=0.5))


def test_evaluate_as_the_released_test_py(saved_model, synthetic_root, tmp_path):
    output = tmp_path / "results"
    code = main(["evaluate", "--model", str(saved_model), "--dataset", "mvtec", "--data-root", str(synthetic_root),
                 "--classes", "tablet", "--compatibility", "released", "--output", str(output), "--quiet"])
    assert code == 0
    model = MoECLIPModel.from_pretrained(saved_model).eval()
    model.config.apply_evaluation_compatibility("released")
    processor = tiny_processor()
    dataset = load_benchmark("mvtec", synthetic_root, classes=["tablet"], image_size=64)
    rows = [dataset[index] for index in range(len(dataset))]
    prompts = processor.tokenize_prompts(["tablet"], "mvtec", "released")
    with torch.no_grad():
        text = model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"]).expand(len(rows), -1, -1)
        out = model(pixel_values=torch.stack([row["pixel_values"] for row in rows]), text_embeds=text)
    assert (out.image_embeds.norm(dim=-1) < 0.999).all()  # the released dot product, not the cosine
    expected = ClassMetricAccumulator()
    expected.update(
        image_anomaly_score(out.image_logits),
        torch.tensor([row["label"] for row in rows]),
        protocol_anomaly_map(out.patch_logits.flatten(1, 2), 64, 7, 1.0),
        torch.stack([row["mask"][0] > 0.5 for row in rows]),
    )
    written = json.loads((output / "results.json").read_text())["datasets"]["mvtec"]["classes"]["tablet"]
    released = expected.compute(normalize_maps=True, score_fusion_weight=0.5, normalize_only_outside_unit_range=True)
    assert written == pytest.approx(released)


def test_classes_without_normal_images_report_pixel_metrics_only():
    mean = mean_over_classes([{"image_auroc": None, "pixel_auroc": 0.8}, {"image_auroc": None, "pixel_auroc": 0.6}])
    assert mean["image_auroc"] is None and mean["pixel_auroc"] == pytest.approx(0.7)


def test_an_unknown_protocol_is_refused(saved_model, synthetic_root):
    model = MoECLIPModel.from_pretrained(saved_model)
    dataset = load_benchmark("mvtec", synthetic_root, image_size=64)
    with pytest.raises(ValueError, match="protocol"):
        evaluate_dataset(model, tiny_processor(), dataset, "mvtec", protocol="best-epoch")
