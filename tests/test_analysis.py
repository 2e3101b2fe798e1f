"""Expert analyses: routing statistics, patch statistics, `explain_image` and `analyze_dataset`."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from moeclip_hf import MoECLIPModel
from moeclip_hf.analysis import (
    STATISTICS,
    analyze_dataset,
    assignment_counts,
    component_anomaly_maps,
    expert_similarity,
    expert_utilisation,
    explain_image,
    mean_routing_weights,
    patch_routing,
    patch_statistics,
    per_expert_sums,
    routing_shares,
    selection_maps,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from moeclip_hf.data import generate, load_benchmark
from moeclip_hf.testing import randomize_moe, tiny_config, tiny_processor

# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> MoECLIPModel:
    """A tiny model whose routers and experts are random, so routing is neither uniform nor a no-op."""
    torch.manual_seed(0)
    return randomize_moe(MoECLIPModel(tiny_config()))


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def picture(width: int = 90, height: int = 60, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gray_pixels(levels: np.ndarray) -> torch.Tensor:
    """CLIP-normalised (1, 3, H, W) pixels of an image whose three channels all hold the 8-bit `levels`."""
    unit = torch.tensor(levels, dtype=torch.float32).div(255.0).expand(1, 3, *levels.shape)
    mean, std = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1), torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    return (unit - mean) / std


def checkerboard(size: int, cell: int, low: int, high: int) -> np.ndarray:
    rows, cols = np.indices((size, size)) // cell
    return np.where((rows + cols) % 2 == 0, low, high)


def opens_as_png(path) -> bool:
    with Image.open(path) as image:
        image.load()
        return image.format == "PNG" and image.width > 0 and image.height > 0


# ------------------------------------------------------------------------------------- routing statistics

# Two images, four patches each (a 2 x 2 grid), top-2 of K = 3 experts.
SELECTED = torch.tensor([[[0, 1], [2, 0], [0, 2], [1, 0]], [[1, 2], [1, 0], [2, 1], [1, 2]]])
WEIGHTS = torch.tensor(
    [[[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], [[0.5, 0.5], [0.6, 0.4], [0.7, 0.3], [0.8, 0.2]]]
)


def test_patch_routing_drops_the_cls_token():
    tokens = torch.arange(2 * 5 * 2).reshape(2, 5, 2)
    assert torch.equal(patch_routing(tokens), tokens[:, 1:])


def test_assignment_counts_and_shares_per_rank():
    counts = assignment_counts(SELECTED, 3)
    assert counts.tolist() == [[2, 4, 2], [3, 2, 3]]
    shares = routing_shares(SELECTED, 3)
    assert torch.allclose(shares, torch.tensor([[2, 4, 2], [3, 2, 3]]) / 8.0)
    assert torch.allclose(shares.sum(dim=-1), torch.ones(2))


def test_utilisation_is_the_share_of_all_top_k_assignments_and_sums_to_one():
    utilisation = expert_utilisation(SELECTED, 3)
    assert torch.allclose(utilisation, torch.tensor([5.0, 6.0, 5.0]) / 16.0)
    assert utilisation.sum().item() == pytest.approx(1.0)


def test_mean_routing_weight_averages_over_the_patches_that_chose_the_expert():
    weights = mean_routing_weights(SELECTED, WEIGHTS, 3)
    # Rank 1: expert 0 <- 0.6, 0.8 (image 0); expert 1 <- 0.9, 0.5, 0.6, 0.8; expert 2 <- 0.7, 0.7.
    expected_top1 = torch.tensor([(0.6 + 0.8) / 2, (0.9 + 0.5 + 0.6 + 0.8) / 4, (0.7 + 0.7) / 2])
    assert torch.allclose(weights[0], expected_top1)
    single = mean_routing_weights(SELECTED[:1, :1], WEIGHTS[:1, :1], 3)
    assert math.isnan(single[0, 2].item()) and single[0, 0].item() == pytest.approx(0.6)


def test_selection_maps_partition_the_grid_per_rank_in_row_major_order():
    maps = selection_maps(SELECTED, 3)
    assert maps.shape == (2, 2, 3, 2, 2)
    assert torch.equal(maps.sum(dim=2), torch.ones(2, 2, 2, 2, dtype=torch.long))
    # Patch 1 is row 0, column 1; its top-1 in image 0 is expert 2.
    assert maps[0, 0, 2, 0, 1] and not maps[0, 0, 0, 0, 1]
    assert torch.allclose(maps.flatten(-2).float().mean(dim=(0, -1)), routing_shares(SELECTED, 3))


def test_expert_similarity_is_symmetric_with_unit_diagonal():
    torch.manual_seed(1)
    selected = torch.stack([torch.randperm(4)[:2] for _ in range(3 * 16)]).reshape(3, 16, 2)
    similarity = expert_similarity(torch.randn(3, 16, 8), selected, 4)
    assert torch.allclose(similarity, similarity.T)
    assert torch.equal(similarity.diagonal(), torch.ones(4))
    assert similarity.abs().max() <= 1.0 + 1e-6


def test_expert_similarity_is_the_cosine_of_per_image_mean_features_skipping_unchosen_experts():
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]]])
    # Image 0: expert 0 <- patches 0, 2 -> mean (1, .5); expert 1 <- patches 0, 1 -> (.5, .5); expert 2 <- 1, 2.
    # Image 1: experts 0 and 1 only; expert 2 is chosen by no patch, so its pairs skip image 1.
    selected = torch.tensor([[[0, 1], [1, 2], [2, 0]], [[0, 1], [1, 0], [0, 1]]])
    similarity = expert_similarity(features, selected, 3)

    def cosine(a, b):
        a, b = torch.tensor(a), torch.tensor(b)
        return (a @ b / (a.norm() * b.norm())).item()

    image0_01 = cosine([1.0, 0.5], [0.5, 0.5])
    image1_01 = cosine([0.0, 2.0 / 3.0], [0.0, 2.0 / 3.0])  # both experts hold all three patches
    assert similarity[0, 1].item() == pytest.approx((image0_01 + image1_01) / 2, abs=1e-6)
    assert similarity[0, 2].item() == pytest.approx(cosine([1.0, 0.5], [0.5, 1.0]), abs=1e-6)
    assert similarity[1, 2].item() == pytest.approx(cosine([0.5, 0.5], [0.5, 1.0]), abs=1e-6)


def test_expert_similarity_of_an_expert_never_chosen_is_undefined():
    selected = torch.tensor([[[0, 1], [1, 0]]])
    similarity = expert_similarity(torch.randn(1, 2, 4), selected, 3)
    assert similarity[2].isnan().all() and similarity[:, 2].isnan().all()
    assert torch.equal(similarity[:2, :2].diagonal(), torch.ones(2))


def test_per_expert_sums_collect_the_values_of_each_experts_patches():
    values = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]]])
    sums, counts = per_expert_sums(values, torch.tensor([[1, 0, 1]]), 3)
    assert counts.tolist() == [1, 2, 0]
    assert sums.tolist() == [[2.0, 20.0], [5.0, 50.0], [0.0, 0.0]]


# --------------------------------------------------------------------------------------- patch statistics


def test_a_constant_image_has_no_gradient_contrast_or_entropy():
    statistics = patch_statistics(gray_pixels(np.full((8, 8), 137)), patch_size=4)
    assert set(statistics) == set(STATISTICS)
    for name in STATISTICS:
        assert statistics[name].shape == (1, 4)
        assert torch.allclose(statistics[name], torch.zeros(1, 4), atol=1e-5), name


def test_a_two_level_checkerboard_has_half_the_level_gap_as_std_and_one_bit_of_entropy():
    # One-pixel cells: x +- 1 (and y +- 1) always land on the same colour, so both Sobel responses vanish,
    # also at the reflect-padded border.
    statistics = patch_statistics(gray_pixels(checkerboard(8, 1, 40, 200)), patch_size=4)
    assert torch.allclose(statistics["std"], torch.full((1, 4), 80.0), atol=1e-4)
    assert torch.allclose(statistics["entropy"], torch.ones(1, 4), atol=1e-6)
    assert torch.allclose(statistics["gradient"], torch.zeros(1, 4), atol=1e-4)


def test_the_gradient_is_the_mean_sobel_magnitude_and_sees_edges_on_patch_borders():
    # Left half 50, right half 130: a vertical step between columns 3 and 4. Sobel gives 4 * 80 in columns
    # 3 and 4 and 0 elsewhere, so each 4-column patch averages one column of 320 out of four: 80.
    levels = np.where(np.arange(8)[None, :] < 4, 50, 130).repeat(8, axis=0)
    statistics = patch_statistics(gray_pixels(levels), patch_size=4)
    assert torch.allclose(statistics["gradient"], torch.full((1, 4), 80.0), atol=1e-3)
    assert torch.allclose(statistics["std"], torch.zeros(1, 4), atol=1e-5)
    assert torch.allclose(statistics["entropy"], torch.zeros(1, 4), atol=1e-6)


def test_four_equally_frequent_levels_have_two_bits_of_entropy():
    levels = np.tile(np.array([[0, 85], [170, 255]]), (2, 2))
    assert patch_statistics(gray_pixels(levels), patch_size=4)["entropy"].item() == pytest.approx(2.0, abs=1e-6)


# ----------------------------------------------------------------------------------------- explain_image


@pytest.fixture(scope="module")
def explanation(model, processor, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    return explain_image(model, processor, picture(), "bottle", folder)


def test_explain_image_writes_the_figures_the_shares_and_a_report_that_shows_them(explanation, model):
    folder = explanation.parent
    assert explanation.name == "report.md"
    layers = [layer.layer_index + 1 for layer in model.moe_layers()]
    figures = ["input.png", "anomaly_maps.png", *(f"routing_layer{layer:02d}.png" for layer in layers)]
    report = explanation.read_text()
    for name in figures:
        assert opens_as_png(folder / name), name
        assert f"({name})" in report, name
    assert "(routing_shares.json)" in report


def test_explain_image_routing_shares_sum_to_one_over_experts(explanation, model):
    shares = json.loads((explanation.parent / "routing_shares.json").read_text())
    num_experts, top_k = model.config.moe_config.num_experts, model.config.moe_config.top_k
    assert shares["num_patches"] == model.config.grid_size**2
    assert sorted(int(layer) for layer in shares["layers"]) == [layer.layer_index + 1 for layer in model.moe_layers()]
    for layer in shares["layers"].values():
        for rank in range(1, top_k + 1):
            entry = layer[f"top{rank}"]
            assert len(entry["share"]) == num_experts
            assert sum(entry["share"]) == pytest.approx(1.0, abs=1e-5)
            assert sum(entry["patches"]) == shares["num_patches"]
        assert sum(layer["utilisation"]) == pytest.approx(1.0, abs=1e-5)


def test_explain_image_shares_are_the_models_patch_routing(explanation, model, processor):
    shares = json.loads((explanation.parent / "routing_shares.json").read_text())
    inputs = processor(images=picture(), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, return_routing=True)
    layers = [layer.layer_index + 1 for layer in model.moe_layers()]
    for layer, selected in zip(layers, outputs.selected_experts):
        expected = routing_shares(patch_routing(selected), model.config.moe_config.num_experts)
        assert shares["layers"][str(layer)]["top1"]["share"] == pytest.approx(expected[0].tolist(), abs=1e-6)


def test_the_component_maps_average_to_the_models_anomaly_map(model, processor):
    inputs = processor(images=picture(seed=3), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    config = model.config
    kernel, sigma = config.blur_kernel_sizes["industrial"], config.blur_sigmas["industrial"]
    maps = component_anomaly_maps(outputs.patch_logits, config.image_size, kernel, sigma)
    assert maps.shape == (1, len(config.feature_layers), len(config.paa_scales), config.image_size, config.image_size)
    assert torch.allclose(maps.mean(dim=(1, 2)), outputs.anomaly_map, atol=1e-6)


# ---------------------------------------------------------------------------------------- analyze_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, categories=["checkers", "tablet"], images_per_category=3, image_size=64)
    return load_benchmark("mvtec", root)


@pytest.fixture(scope="module")
def analysis(model, processor, dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze")
    return analyze_dataset(model, processor, dataset, folder, batch_size=4, progress=False)


def test_analyze_dataset_utilisation_shares_sum_to_one(analysis, model):
    assert analysis["num_images"] == 6
    assert analysis["layers"] == [layer.layer_index + 1 for layer in model.moe_layers()]
    for layer in analysis["layers"]:
        assert sum(analysis["utilisation"][layer]) == pytest.approx(1.0, abs=1e-5)
        for rank in analysis["rank_shares"][layer]:
            assert sum(rank) == pytest.approx(1.0, abs=1e-5)
    assert set(analysis["class_utilisation"]) == {"checkers", "tablet"}
    for by_layer in analysis["class_utilisation"].values():
        assert all(sum(shares) == pytest.approx(1.0, abs=1e-5) for shares in by_layer.values())


def test_analyze_dataset_similarity_is_symmetric_with_unit_diagonal(analysis):
    for layer in analysis["layers"]:
        matrix = np.array(analysis["similarity"][layer], dtype=float)
        assert np.allclose(matrix, matrix.T, equal_nan=True)
        assert np.array_equal(np.diag(matrix), np.ones(len(matrix)))


def test_analyze_dataset_accumulates_batches_like_one_pass_over_all_images(analysis, model, processor, dataset):
    images = dataset[:]["image"]
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = model.get_patch_features(pixel_values, layers=model.config.moe_config.layers, return_routing=True)
    num_experts = model.config.moe_config.num_experts
    statistics = patch_statistics(pixel_values, model.config.vision_config.patch_size)
    for layer, selected_experts, features in zip(analysis["layers"], outputs.selected_experts, outputs.patch_features):
        selected = patch_routing(selected_experts)
        expected = expert_similarity(features, selected, num_experts)
        assert np.allclose(analysis["similarity"][layer], expected.numpy(), atol=1e-5)
        utilisation = expert_utilisation(selected, num_experts).tolist()
        assert analysis["utilisation"][layer] == pytest.approx(utilisation, abs=1e-6)
        top1 = selected[..., 0]
        entry = analysis["patch_statistics"][layer]
        assert entry["patches"] == torch.bincount(top1.flatten(), minlength=num_experts).tolist()
        for expert in range(num_experts):
            mine = top1 == expert
            for name in STATISTICS:
                if mine.any():
                    assert entry[name][expert] == pytest.approx(statistics[name][mine].mean().item(), rel=1e-5)
                else:
                    assert entry[name][expert] is None


def test_analyze_dataset_writes_figures_tables_summary_and_report(analysis, model):
    files = analysis["files"]
    for name in ("utilisation_png", "similarity_png", "patch_statistics_png"):
        assert opens_as_png(files[name]), name
    with open(files["similarity_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    num_experts = model.config.moe_config.num_experts
    assert len(rows) == len(analysis["layers"]) * num_experts**2
    with open(files["patch_statistics_csv"], newline="") as handle:
        assert list(csv.DictReader(handle).fieldnames) == ["layer", "expert", "patches", *STATISTICS]
    summary = json.loads(open(files["summary_json"]).read())
    assert summary["num_images"] == 6
    report = open(files["report"]).read()
    for name in ("utilisation.png", "similarity.png", "patch_statistics.png"):
        assert f"({name})" in report


def test_analyze_dataset_honours_max_images(model, processor, dataset, tmp_path):
    result = analyze_dataset(model, processor, dataset, tmp_path, batch_size=2, max_images=3, progress=False)
    assert result["num_images"] == 3
    assert set(result["class_utilisation"]) == {"checkers"}
