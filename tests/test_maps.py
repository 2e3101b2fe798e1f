"""Patch logits, training / test / single-image anomaly maps and image scores (METHOD.md, "Outputs")."""

from __future__ import annotations

import math
from pathlib import Path

import kornia
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from moeclip_hf import MoECLIPConfig
from moeclip_hf.modeling.maps import (
    anomaly_logit_map,
    fuse_image_score,
    gaussian_blur,
    image_anomaly_score,
    patch_logits,
    probability_anomaly_map,
    protocol_anomaly_map,
    training_probabilities,
)


def blur(domain: str) -> tuple[int, float]:
    """The default (kernel size, sigma) of a domain's map blur."""
    config = MoECLIPConfig()
    return config.blur_kernel_sizes[domain], config.blur_sigmas[domain]

FIXTURES = Path(__file__).parent / "fixtures" / "released_parity.safetensors"


@pytest.fixture(scope="module")
def released() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES)


@pytest.fixture(scope="module")
def released_logits(released) -> torch.Tensor:
    """(2, 2, 7, 7) logits from the fixture's (B, P, e) patch features and (e, 2) text columns [T_N, T_A]."""
    features = released["maps.patch_features"]
    grid = features.transpose(1, 2).reshape(2, 12, 7, 7)  # token index = row * 7 + col
    text = released["maps.text"].T.unsqueeze(0).expand(2, 2, 12)
    return patch_logits(grid, text)


def upsample(grids: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(grids, size=(size, size), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------------------------------- patch logits


def test_patch_logits_hand_example_normalises_patches():
    # e = 2 on a 1 x 2 grid: the left patch is (3, 4), the right one (0, -2).
    patches = torch.tensor([[[3.0, 0.0]], [[4.0, -2.0]]]).unsqueeze(0)  # (B=1, e=2, 1, 2)
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # T_N = x axis, T_A = y axis
    logits = patch_logits(patches, text)
    # cos with T_N / T_A are the normalised coordinates: (0.6, 0.8) on the left, (0, -1) on the right.
    expected = 100.0 * torch.tensor([[[0.6, 0.0]], [[0.8, -1.0]]]).unsqueeze(0)
    torch.testing.assert_close(logits, expected)


def test_patch_logits_scale_and_extra_dims():
    torch.manual_seed(0)
    patches = torch.randn(2, 3, 4, 6, 5, 5)  # (B, layers, scales, e, g, g)
    text = F.normalize(torch.randn(2, 2, 6), dim=-1)
    logits = patch_logits(patches, text, logit_scale=10.0)
    assert logits.shape == (2, 3, 4, 2, 5, 5)
    cosines = torch.einsum("blsehw,bte->blsthw", F.normalize(patches, dim=3), text)
    torch.testing.assert_close(logits, 10.0 * cosines, atol=1e-5, rtol=0)


def test_patch_logits_rejects_mismatched_text():
    with pytest.raises(ValueError, match="text_embeddings"):
        patch_logits(torch.randn(2, 6, 5, 5), torch.randn(2, 2, 7))
    with pytest.raises(ValueError, match="text_embeddings"):
        patch_logits(torch.randn(2, 6, 5, 5), torch.randn(1, 2, 6))
    with pytest.raises(ValueError, match="patch_embeddings"):
        patch_logits(torch.randn(6, 5, 5), torch.randn(1, 2, 6))


# ------------------------------------------------------------------------------------------ training maps


def test_training_probabilities_match_released_code(released, released_logits):
    probs = training_probabilities(released_logits, 28)
    torch.testing.assert_close(probs, released["maps.train_probs"], atol=1e-5, rtol=0)


def test_training_probabilities_hand_example():
    normal = torch.zeros(2, 2)
    anomalous = torch.tensor([[0.0, 2.0], [4.0, 6.0]])
    probs = training_probabilities(torch.stack([normal, anomalous]), (3, 3))
    # align_corners=True keeps the corners and puts the mean of the four cells at the centre.
    expected = torch.tensor([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [4.0, 5.0, 6.0]]).sigmoid()
    torch.testing.assert_close(probs[1], expected)
    torch.testing.assert_close(probs.sum(dim=0), torch.ones(3, 3))


def test_training_probabilities_keep_leading_dims_and_rectangular_size():
    logits = torch.randn(2, 3, 4, 2, 5, 5)
    probs = training_probabilities(logits, (20, 15))
    assert probs.shape == (2, 3, 4, 2, 20, 15)
    torch.testing.assert_close(probs[1, 2, 3], training_probabilities(logits[1, 2, 3], (20, 15)))


def test_training_probabilities_reject_bad_channels_and_size():
    with pytest.raises(ValueError, match="logits"):
        training_probabilities(torch.randn(2, 3, 5, 5), 20)
    with pytest.raises(ValueError, match="image_size"):
        training_probabilities(torch.randn(2, 2, 5, 5), (20, 0))
    with pytest.raises(ValueError, match="image_size"):
        training_probabilities(torch.randn(2, 2, 5, 5), None)


# --------------------------------------------------------------------------------------------- blur


@pytest.mark.parametrize("domain", ["industrial", "medical"])
def test_gaussian_blur_matches_kornia_reflect(domain):
    kernel_size, sigma = blur(domain)
    maps = torch.randn(2, 3, 7, 7)
    expected = kornia.filters.gaussian_blur2d(maps, (kernel_size, kernel_size), (sigma, sigma))
    torch.testing.assert_close(gaussian_blur(maps, kernel_size, sigma), expected, atol=1e-6, rtol=0)


def test_gaussian_blur_hand_example_with_reflect_border():
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1.0
    side, centre = math.exp(-0.5), 1.0
    kernel = [side / (2 * side + centre), centre / (2 * side + centre)]
    # Reflect padding mirrors the centre row/column into the border, so the border cells receive both side taps.
    weights = torch.tensor([2 * kernel[0], kernel[1], 2 * kernel[0]])
    torch.testing.assert_close(gaussian_blur(delta, 3, 1.0), torch.outer(weights, weights))


def test_gaussian_blur_keeps_constants_and_leading_dims():
    maps = torch.full((2, 3, 4, 9, 9), 2.5)
    torch.testing.assert_close(gaussian_blur(maps, 9, 1.5), maps)


def test_gaussian_blur_rejects_bad_settings():
    with pytest.raises(ValueError, match="kernel_size"):
        gaussian_blur(torch.zeros(7, 7), 4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(torch.zeros(7, 7), 7, 0.0)
    with pytest.raises(ValueError, match="maps"):
        gaussian_blur(torch.zeros(4, 4), 9, 1.5)


# ------------------------------------------------------------------------------------ test-time maps


def test_blur_and_fusion_defaults_are_the_released_constants():
    config = MoECLIPConfig()
    assert config.blur_kernel_sizes == {"industrial": 7, "medical": 9}
    assert config.blur_sigmas == {"industrial": 1.0, "medical": 1.5}
    assert config.score_fusion_weights == {"industrial": 0.5, "medical": 1.0}


def test_anomaly_logit_map_hand_example():
    logits = torch.stack([torch.full((2, 2), 10.0), torch.tensor([[20.0, 9.0], [10.0, -1.0]])])
    expected = torch.tensor([[5.5, 0.0], [0.5, -5.0]])  # (z_A + 1 - z_N) / 2
    torch.testing.assert_close(anomaly_logit_map(logits), expected)
    assert anomaly_logit_map(torch.randn(2, 3, 2, 5, 5)).shape == (2, 3, 5, 5)


@pytest.mark.parametrize(("domain", "key"), [("industrial", "maps.test_industrial"), ("medical", "maps.test_medical")])
def test_protocol_map_matches_released_code(released, released_logits, domain, key):
    kernel_size, sigma = blur(domain)
    anomaly_map = protocol_anomaly_map(released_logits.unsqueeze(1), 28, kernel_size, sigma)
    torch.testing.assert_close(anomaly_map, released[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize("domain", ["industrial", "medical"])
def test_protocol_map_sum_first_equals_blur_upsample_each_then_sum(domain):
    kernel_size, sigma = blur(domain)
    torch.manual_seed(0)
    logits = 100.0 * torch.rand(2, 6, 2, 9, 9, dtype=torch.float64)
    per_map = [
        upsample(gaussian_blur(anomaly_logit_map(logits[:, m]), kernel_size, sigma).unsqueeze(1), 36).squeeze(1)
        for m in range(6)
    ]
    expected = torch.stack(per_map).sum(dim=0)
    torch.testing.assert_close(protocol_anomaly_map(logits, 36, kernel_size, sigma), expected, atol=1e-5, rtol=0)


def test_protocol_map_of_constant_logits_is_the_sum_of_constants():
    logits = torch.zeros(1, 4, 2, 7, 7)
    logits[:, :, 1] = 3.0  # z_A - z_N = 3, so each map is (3 + 1) / 2 = 2
    torch.testing.assert_close(protocol_anomaly_map(logits, (14, 21), 7, 1.0), torch.full((1, 14, 21), 8.0))


def test_protocol_map_rejects_logits_without_map_dim():
    with pytest.raises(ValueError, match="logits"):
        protocol_anomaly_map(torch.randn(2, 2, 7, 7), 28, 7, 1.0)


# ---------------------------------------------------------------------------------- single-image maps


def test_probability_map_is_mean_of_softmax_of_upsampled_blurred_channels():
    torch.manual_seed(0)
    logits = 5.0 * torch.randn(2, 6, 2, 9, 9, dtype=torch.float64)
    kernel_size, sigma = blur("medical")
    per_map = [
        upsample(gaussian_blur(logits[:, m], kernel_size, sigma), 36).softmax(dim=1)[:, 1] for m in range(6)
    ]
    expected = torch.stack(per_map).mean(dim=0)
    torch.testing.assert_close(probability_anomaly_map(logits, 36, kernel_size, sigma), expected, atol=1e-6, rtol=0)


def test_probability_map_lies_in_unit_interval_for_extreme_logits():
    logits = torch.zeros(2, 3, 2, 7, 7)
    logits[0, :, 1] = 1e4
    logits[1, :, 0] = 1e4
    anomaly_map = probability_anomaly_map(logits, 28, 7, 1.0)
    assert anomaly_map.shape == (2, 28, 28)
    torch.testing.assert_close(anomaly_map[0], torch.ones(28, 28))
    torch.testing.assert_close(anomaly_map[1], torch.zeros(28, 28))
    random_map = probability_anomaly_map(100.0 * torch.randn(3, 4, 2, 7, 7), 28, 9, 1.5)
    assert random_map.min() >= 0.0 and random_map.max() <= 1.0


def test_probability_map_of_equal_logits_is_one_half():
    logits = torch.full((1, 2, 2, 7, 7), 30.0)
    torch.testing.assert_close(probability_anomaly_map(logits, 14, 7, 1.0), torch.full((1, 14, 14), 0.5))


def test_probability_map_rejects_bad_channels():
    with pytest.raises(ValueError, match="logits"):
        probability_anomaly_map(torch.randn(1, 2, 3, 7, 7), 28, 7, 1.0)


# -------------------------------------------------------------------------------------------- scores


def test_image_anomaly_score_hand_example():
    cosines = torch.tensor([[0.2, -0.6], [0.1, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(image_anomaly_score(cosines), torch.tensor([0.2, 1.0, 0.5]))
    assert image_anomaly_score(torch.zeros(2, 3, 2)).shape == (2, 3)
    with pytest.raises(ValueError, match="image_cosines"):
        image_anomaly_score(torch.zeros(4, 3))


def test_fuse_image_score_hand_example():
    map_max, score = torch.tensor([0.8, 0.2]), torch.tensor([0.4, 1.0])
    torch.testing.assert_close(fuse_image_score(map_max, score, 0.5), torch.tensor([0.6, 0.6]))
    torch.testing.assert_close(fuse_image_score(map_max, score, MoECLIPConfig().score_fusion_weights["medical"]), map_max)
    torch.testing.assert_close(fuse_image_score(map_max, score, 0.0), score)
    with pytest.raises(ValueError, match="map_weight"):
        fuse_image_score(map_max, score, 1.5)
