"""Focal, Dice, segmentation and classification losses (METHOD.md, "Losses and training"; Eq. 15, B.3, B.4)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from moeclip_hf.modeling.losses import classification_loss, dice_loss, focal_loss, segmentation_loss

FIXTURES = Path(__file__).parent / "fixtures" / "released_parity.safetensors"

SMOOTH = 1e-5

# A 2 x 2 example: anomaly probabilities and a binary mask.
ANOMALY_PROBS = [[0.9, 0.2], [0.6, 0.5]]
MASK = [[1.0, 0.0], [0.0, 1.0]]


@pytest.fixture(scope="module")
def released() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES)


def two_channel(anomaly: torch.Tensor) -> torch.Tensor:
    """(B, H, W) anomaly probabilities -> (B, 2, H, W) [normal, anomalous]."""
    return torch.stack([1.0 - anomaly, anomaly], dim=1)


def hand_focal(anomaly_probs, mask, gamma=2.0):
    """Eq. B.3 with the released smoothing, in plain Python: clamped one-hot, pt offset by SMOOTH."""
    losses = []
    for prob_row, mask_row in zip(anomaly_probs, mask):
        for p_anomaly, label in zip(prob_row, mask_row):
            target_anomaly = 1.0 - SMOOTH if label == 1.0 else SMOOTH
            target_normal = SMOOTH if label == 1.0 else 1.0 - SMOOTH
            pt = target_normal * (1.0 - p_anomaly) + target_anomaly * p_anomaly + SMOOTH
            losses.append(-((1.0 - pt) ** gamma) * math.log(pt))
    return sum(losses) / len(losses)


def hand_dice(pred, target, smooth=1.0):
    flat_pred = [v for row in pred for v in row]
    flat_target = [v for row in target for v in row]
    overlap = sum(p * q for p, q in zip(flat_pred, flat_target))
    return 1.0 - (2.0 * overlap + smooth) / (sum(flat_pred) + sum(flat_target) + smooth)


def complement(grid):
    return [[1.0 - v for v in row] for row in grid]


# ---------------------------------------------------------------------------------------------- focal


def test_focal_matches_released_code(released):
    loss = focal_loss(released["loss.probs"], released["loss.mask"])
    torch.testing.assert_close(loss, released["loss.focal"][0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("gamma", [2.0, 0.0])
def test_focal_equals_hand_computation(gamma):
    probs = two_channel(torch.tensor([ANOMALY_PROBS]))
    loss = focal_loss(probs, torch.tensor([[MASK]]), gamma=gamma)
    assert loss.item() == pytest.approx(hand_focal(ANOMALY_PROBS, MASK, gamma), abs=1e-6)


def test_focal_of_confident_wrong_pixel_is_bounded_by_smoothing():
    # p = 0 on the true class: pt = SMOOTH * 1 + SMOOTH, so the loss is finite.
    loss = focal_loss(two_channel(torch.zeros(1, 1, 1)), torch.ones(1, 1, 1))
    pt = 2 * SMOOTH
    assert loss.item() == pytest.approx(-((1 - pt) ** 2) * math.log(pt), rel=1e-4)


def test_focal_accepts_mask_with_or_without_channel_dim(released):
    probs, mask = released["loss.probs"], released["loss.mask"]
    torch.testing.assert_close(focal_loss(probs, mask), focal_loss(probs, mask[:, 0]))


def test_focal_rejects_bad_shapes():
    with pytest.raises(ValueError, match="probs"):
        focal_loss(torch.rand(2, 3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        focal_loss(torch.rand(2, 2, 4, 4), torch.zeros(2, 4, 5))


# ----------------------------------------------------------------------------------------------- dice


def test_dice_matches_released_code(released):
    probs, mask = released["loss.probs"], released["loss.mask"]
    loss = dice_loss(probs[:, 0], 1.0 - mask) + dice_loss(probs[:, 1], mask)
    torch.testing.assert_close(loss, released["loss.dice_sum"][0], atol=1e-5, rtol=0)


def test_dice_hand_example_averages_over_batch():
    pred = torch.tensor([[[0.5, 1.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    # Image 1: sum(pq) = 1.5, sum(p) = 2, sum(q) = 2 -> 1 - 4 / 5 = 0.2. Image 2: 1 - 1 / 1 = 0.
    assert dice_loss(pred, target).item() == pytest.approx(0.1)
    assert dice_loss(pred, target.unsqueeze(1)).item() == pytest.approx(0.1)
    assert dice_loss(pred[:1], target[:1], smooth=0.0).item() == pytest.approx(1 - 3 / 4)


def test_dice_on_2x2_example_equals_hand_computation():
    pred = torch.tensor([ANOMALY_PROBS])
    assert dice_loss(pred, torch.tensor([MASK])).item() == pytest.approx(hand_dice(ANOMALY_PROBS, MASK))


def test_dice_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="pred"):
        dice_loss(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
    with pytest.raises(ValueError, match="target"):
        dice_loss(torch.rand(2, 4, 4), torch.rand(3, 4, 4))


# --------------------------------------------------------------------------------------- segmentation


def test_segmentation_loss_of_one_map_matches_released_code(released):
    loss = segmentation_loss(released["loss.probs"].unsqueeze(1), released["loss.mask"])
    expected = released["loss.focal"][0] + released["loss.dice_sum"][0]
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)


def test_segmentation_loss_on_2x2_example_equals_hand_computation():
    probs = two_channel(torch.tensor([ANOMALY_PROBS])).unsqueeze(1)
    expected = (
        hand_focal(ANOMALY_PROBS, MASK)
        + hand_dice(ANOMALY_PROBS, MASK)
        + hand_dice(complement(ANOMALY_PROBS), complement(MASK))
    )
    assert segmentation_loss(probs, torch.tensor([MASK])).item() == pytest.approx(expected, abs=1e-6)


def test_segmentation_loss_sums_maps():
    torch.manual_seed(0)
    probs = torch.rand(3, 5, 2, 8, 8).softmax(dim=2)  # (B, M, 2, H, W)
    mask = (torch.rand(3, 1, 8, 8) > 0.7).float()
    expected = sum(
        focal_loss(probs[:, m], mask) + dice_loss(probs[:, m, 1], mask) + dice_loss(probs[:, m, 0], 1.0 - mask)
        for m in range(5)
    )
    torch.testing.assert_close(segmentation_loss(probs, mask), expected)
    torch.testing.assert_close(segmentation_loss(probs, mask[:, 0].bool()), expected)


def test_segmentation_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="probs"):
        segmentation_loss(torch.rand(2, 2, 8, 8), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        segmentation_loss(torch.rand(2, 3, 2, 8, 8), torch.zeros(2, 2, 8, 8))


# ------------------------------------------------------------------------------------- classification


def test_classification_loss_hand_example():
    cosines = torch.tensor([[0.3, 0.1], [0.2, 0.6]])
    labels = torch.tensor([1, 0])
    # Cross-entropy on the raw cosines: -log softmax picks the labelled column.
    expected = (math.log(1 + math.exp(0.2)) + math.log(1 + math.exp(0.4))) / 2
    assert classification_loss(cosines, labels).item() == pytest.approx(expected, abs=1e-6)
    assert classification_loss(cosines, labels.float()).item() == pytest.approx(expected, abs=1e-6)


def test_classification_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="image_cosines"):
        classification_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        classification_loss(torch.zeros(2, 2), torch.zeros(3, dtype=torch.long))
