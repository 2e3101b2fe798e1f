"""The `evaluate` module loads offline from the package and returns the functions' numbers."""

import ast
import socket

import evaluate
import numpy as np
import pytest

from moeclip_hf.evaluation import METRIC_MODULE_PATH
from moeclip_hf.evaluation import classification_metrics
from moeclip_hf.evaluation import load_metric
from moeclip_hf.evaluation import segmentation_metrics


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub offline flags set, and any attempt to open a network connection fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_module_file_has_one_import_per_line() -> None:
    # evaluate's loader scans imports with a per-line regex and fails on `import a, b`.
    tree = ast.parse((METRIC_MODULE_PATH / "anomaly_detection.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports
    assert all(len(node.names) == 1 for node in imports)


@pytest.mark.usefixtures("offline")
def test_loads_from_its_folder_and_matches_the_functions(tmp_path) -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(2_000), 2)
    labels = (rng.random(2_000) < 0.2).astype(np.int32)
    metric = evaluate.load(str(METRIC_MODULE_PATH), cache_dir=str(tmp_path))
    assert metric.compute(predictions=scores, references=labels) == classification_metrics(scores, labels)


@pytest.mark.usefixtures("offline")
def test_load_metric_computes_in_batches(tmp_path) -> None:
    rng = np.random.default_rng(1)
    scores, labels = rng.random(300), (rng.random(300) < 0.5).astype(np.int32)
    metric = load_metric(cache_dir=str(tmp_path))
    for start in range(0, 300, 100):
        metric.add_batch(predictions=scores[start : start + 100], references=labels[start : start + 100])
    assert metric.compute() == classification_metrics(scores, labels)


@pytest.mark.usefixtures("offline")
def test_documented_example(tmp_path) -> None:
    metric = load_metric(keep_in_memory=True, cache_dir=str(tmp_path))
    assert metric.compute(predictions=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1]) == {
        "auroc": 0.75,
        "average_precision": 0.8333333333333333,
        "f1_max": 0.8,
    }
    assert "MoECLIP" in metric.citation and "fpr_limit" in metric.inputs_description


@pytest.mark.usefixtures("offline")
def test_pixel_configuration_adds_aupro(tmp_path) -> None:
    rng = np.random.default_rng(2)
    maps = rng.random((3, 9, 11))
    masks = (rng.random((3, 9, 11)) < 0.15).astype(np.int32)
    metric = load_metric("pixel", keep_in_memory=True, cache_dir=str(tmp_path))
    assert metric.compute(predictions=maps, references=masks) == segmentation_metrics(maps, masks)
    assert metric.compute(predictions=maps, references=masks, fpr_limit=0.1) == segmentation_metrics(
        maps, masks, fpr_limit=0.1
    )


@pytest.mark.usefixtures("offline")
def test_fpr_limit_belongs_to_the_pixel_configuration(tmp_path) -> None:
    metric = load_metric(keep_in_memory=True, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="`fpr_limit` applies to the \"pixel\" configuration only"):
        metric.compute(predictions=[0.1, 0.9], references=[0, 1], fpr_limit=0.2)


@pytest.mark.usefixtures("offline")
def test_unknown_configuration(tmp_path) -> None:
    with pytest.raises(ValueError, match='unknown configuration "pixels"'):
        load_metric("pixels", cache_dir=str(tmp_path))
