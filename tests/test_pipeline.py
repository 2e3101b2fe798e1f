"""The zero-shot anomaly detection pipeline and `moeclip detect`."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from moeclip_hf import MoECLIPModel
from moeclip_hf.cli import main
from moeclip_hf.testing import save_tiny_model, tiny_processor
from moeclip_hf.inference.visualization import contour, overlay


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-moeclip"))


@pytest.fixture(scope="module")
def detector(saved_model):
    return pipeline("zero-shot-anomaly-detection", model=str(saved_model))


def picture(width=90, height=60, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_a_single_image_gives_score_verdict_and_a_map_of_its_own_size(detector):
    result = detector(picture(), class_name="bottle")
    assert set(result) == {"score", "is_anomalous", "anomaly_map", "threshold"}
    assert 0.0 <= result["score"] <= 1.0
    assert result["threshold"] == 0.5 and result["is_anomalous"] == (result["score"] >= 0.5)
    assert result["anomaly_map"].size == (90, 60) and result["anomaly_map"].mode == "L"


def test_the_pipeline_score_is_the_models_score(detector, saved_model):
    model = MoECLIPModel.from_pretrained(saved_model).eval()
    inputs = tiny_processor()(images=picture(), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).anomaly_score.item()
    assert detector(picture(), class_name="bottle")["score"] == pytest.approx(expected, abs=1e-6)


def test_a_list_of_images_gives_one_result_each(detector, tmp_path):
    path = tmp_path / "part.png"
    picture(40, 70, seed=1).save(path)
    results = detector([picture(), str(path)], class_name="screw")
    assert len(results) == 2
    assert results[1]["anomaly_map"].size == (40, 70)


def test_the_segmentation_format_is_the_hub_widget_shape(detector):
    result = detector(picture(), class_name="pill", output_format="segmentation", threshold=0.3)
    assert isinstance(result, list) and len(result) == 1
    (segment,) = result
    assert segment["label"] == "anomaly" and 0 <= segment["score"] <= 1
    assert segment["mask"].size == (90, 60)
    assert set(np.unique(np.asarray(segment["mask"]))) <= {0, 255}


def test_the_threshold_sets_the_verdict(detector):
    low = detector(picture(), class_name="bottle", threshold=0.0)
    high = detector(picture(), class_name="bottle", threshold=1.0)
    assert low["is_anomalous"] and not high["is_anomalous"]


def test_bad_arguments_and_files_raise_clear_errors(detector, tmp_path):
    with pytest.raises(ValueError, match="output_format"):
        detector(picture(), class_name="bottle", output_format="boxes")
    with pytest.raises(ValueError, match="threshold"):
        detector(picture(), class_name="bottle", threshold=2.0)
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        detector(str(fake), class_name="bottle")


def test_an_empty_class_name_falls_back_to_object_and_says_so(detector, caplog):
    with caplog.at_level("WARNING"):
        result = detector(picture(), class_name="  ")
    assert "object" in caplog.text
    assert 0.0 <= result["score"] <= 1.0


def test_detect_prints_verdicts_and_writes_overlays_of_the_input_size(saved_model, tmp_path, capsys):
    image_path = tmp_path / "scan.png"
    picture(75, 50).save(image_path)
    code = main(["detect", "--model", str(saved_model), str(image_path), "--class-name", "brain scan", "--output", str(tmp_path / "out")])
    assert code == 0
    assert "scan.png" in capsys.readouterr().out
    written = Image.open(tmp_path / "out" / "scan_overlay.png")
    assert written.size == (75, 50) and written.mode == "RGB"


def test_detect_names_a_missing_file(saved_model, tmp_path, capsys):
    code = main(["detect", "--model", str(saved_model), str(tmp_path / "missing.png"), "--class-name", "bottle"])
    assert code == 1 and "missing.png" in capsys.readouterr().err


def test_the_overlay_draws_the_threshold_contour():
    anomaly_map = np.zeros((8, 8), dtype=np.float32)
    anomaly_map[2:6, 2:6] = 1.0
    edge = contour(anomaly_map >= 0.5)
    assert edge.sum() == 12 and not edge[3:5, 3:5].any()
    drawn = np.asarray(overlay(Image.new("RGB", (8, 8)), anomaly_map, threshold=0.5))
    assert (drawn[edge] == 255).all()
    with pytest.raises(ValueError, match="does not match"):
        overlay(Image.new("RGB", (8, 9)), anomaly_map)


def test_the_array_format_holds_the_values_the_picture_and_the_mask_are_made_from(detector):
    values = detector(picture(), class_name="bottle", output_format="array")["anomaly_map"]
    grey = detector(picture(), class_name="bottle")["anomaly_map"]
    threshold = float(np.median(values))
    (segment,) = detector(picture(), class_name="bottle", threshold=threshold, output_format="segmentation")
    assert values.dtype == np.float32 and values.shape == (60, 90) and 0.0 <= values.min() <= values.max() <= 1.0
    assert np.array_equal(np.asarray(grey), np.round(values * 255).astype(np.uint8))
    assert np.array_equal(np.asarray(segment["mask"]) == 255, values >= threshold)


def test_the_map_is_upsampled_once_from_the_patch_grid_to_the_images_size(detector, saved_model):
    from moeclip_hf.modeling.maps import probability_anomaly_map

    model = MoECLIPModel.from_pretrained(saved_model).eval()
    inputs = tiny_processor()(images=picture(), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).patch_logits
    config = model.config
    expected = probability_anomaly_map(logits.flatten(1, 2), (60, 90), config.blur_kernel_sizes["industrial"], config.blur_sigmas["industrial"])
    values = detector(picture(), class_name="bottle", output_format="array")["anomaly_map"]
    np.testing.assert_allclose(values, expected[0].numpy(), atol=1e-6)
