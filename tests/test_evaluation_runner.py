"""The benchmark runner and `moeclip evaluate`: per-class tables in Markdown, CSV and JSON."""

import csv
import json
from pathlib import Path

import pytest
import torch

from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main
from moeclip_hf.data import load_benchmark
from moeclip_hf.data.synthetic import generate
from moeclip_hf.evaluation.accumulator import ClassMetricAccumulator
from moeclip_hf.benchmarks import BENCHMARKS
from moeclip_hf.benchmarks import METRIC_NAMES
from moeclip_hf.evaluation.runner import BenchmarkResult, evaluate_dataset, mean_over_classes
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
    assert "paper" not in printed  # the paper's MVTec-AD figures are not a mean over these two classes
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


def protocol_metrics(model, processor, rows, description: str, kernel: int, sigma: float, weight: float) -> dict:
    """The released protocol computed by hand for one class: its prompt set, blur and score fusion."""
    pixel_values = torch.stack([row["pixel_values"] for row in rows])
    prompts = processor.tokenize_descriptions([description])
    with torch.no_grad():
        text = model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"]).expand(len(rows), -1, -1)
        out = model(pixel_values=pixel_values, text_embeds=text)
    expected = ClassMetricAccumulator()
    expected.update(
        image_anomaly_score(out.image_logits),
        torch.tensor([row["label"] for row in rows]),
        protocol_anomaly_map(out.patch_logits.flatten(1, 2), model.config.image_size, kernel, sigma),
        torch.stack([row["mask"][0] > 0.5 for row in rows]),
    )
    return expected.compute(normalize_maps=True, score_fusion_weight=weight)


def test_the_moeclip_protocol_normalises_per_class_and_fuses_scores(saved_model, synthetic_root):
    model = MoECLIPModel.from_pretrained(saved_model).eval()
    processor = tiny_processor()
    dataset = load_benchmark("mvtec", synthetic_root, classes=["tablet"], image_size=64)
    result = evaluate_dataset(model, processor, dataset, "mvtec", protocol="moeclip", batch_size=3, progress=False)
    rows = [dataset[index] for index in range(len(dataset))]
    expected = protocol_metrics(model, processor, rows, "tablet", 7, 1.0, 0.5)
    assert result.classes["tablet"] == pytest.approx(expected)


def test_evaluate_takes_prompts_blur_and_fusion_per_class_from_the_rows(saved_model, synthetic_root, tmp_path):
    """One JSON-lines file, one industrial and one medical class: each is scored as its own rows say."""
    raw = load_benchmark("mvtec", synthetic_root).with_format(None)
    renamed = {"stripes": "stripes", "tablet": "Brain"}  # Brain: the released name of Brain MRI, "scan", medical
    lines = [
        {
            "image_path": str(Path(row["image"]["path"]).relative_to(synthetic_root)),
            "mask_path": row["mask"] and str(Path(row["mask"]["path"]).relative_to(synthetic_root)),
            "label": float(row["label"]),
            "class_name": renamed[row["class_name"]],
        }
        for row in raw
    ]
    meta = tmp_path / "full-shot.jsonl"
    meta.write_text("\n".join(json.dumps(line) for line in lines))
    output = tmp_path / "results"
    assert main(["evaluate", "--model", str(saved_model), "--dataset", "jsonl", "--data-root", str(synthetic_root),
                 "--meta-file", str(meta), "--output", str(output), "--quiet"]) == 0
    classes = json.loads((output / "results.json").read_text())["datasets"]["jsonl"]["classes"]

    model, processor = MoECLIPModel.from_pretrained(saved_model).eval(), tiny_processor()
    dataset = load_benchmark("jsonl", synthetic_root, meta_file=meta, image_size=64)
    rows = {name: [row for row in dataset if row["class_name"] == name] for name in ("stripes", "Brain")}
    assert classes["stripes"] == pytest.approx(protocol_metrics(model, processor, rows["stripes"], "stripes", 7, 1.0, 0.5))
    medical = protocol_metrics(model, processor, rows["Brain"], "scan", 9, 1.5, 1.0)
    assert classes["Brain"] == pytest.approx(medical)
    as_industrial = protocol_metrics(model, processor, rows["Brain"], "scan", 7, 1.0, 0.5)
    as_written = protocol_metrics(model, processor, rows["Brain"], "Brain", 9, 1.5, 1.0)
    assert medical != pytest.approx(as_industrial) and medical != pytest.approx(as_written)


def test_the_paper_row_appears_only_under_the_class_set_it_belongs_to():
    metrics = dict.fromkeys(METRIC_NAMES, 0.5)
    mvtec = BENCHMARKS["mvtec"].classes
    assert "| paper (Tab. 1) | 93.9 | 96.8 |" in BenchmarkResult("mvtec", "moeclip", {n: metrics for n in mvtec}).to_markdown()
    released_visa = {name: metrics for name in BENCHMARKS["visa"].classes}
    assert "| paper (Tab. 1) | 83.6 | 86.2 |" in BenchmarkResult("jsonl", "moeclip", released_visa).to_markdown()
    for classes in (mvtec[:2], [*mvtec, "stripes"], ["stripes", "tablet"]):
        assert "paper" not in BenchmarkResult("mvtec", "moeclip", {n: metrics for n in classes}).to_markdown()


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
