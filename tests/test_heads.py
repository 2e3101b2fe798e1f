"""PAA (Eq. 10) and the depth-wise adapter image head (Eq. 13)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from moeclip_hf.modeling.heads import DepthwiseAdapter, patch_aggregation, patch_average_pool

FIXTURES = Path(__file__).parent / "fixtures" / "released_parity.safetensors"


@pytest.fixture(scope="module")
def released() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES)


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, P, C) patch tokens in row-major order -> (B, C, g, g)."""
    batch_size, num_patches, channels = tokens.shape
    side = math.isqrt(num_patches)
    return tokens.transpose(1, 2).reshape(batch_size, channels, side, side)


def grid_to_tokens(grid: torch.Tensor) -> torch.Tensor:
    return grid.flatten(2).transpose(1, 2)


def looped_window_mean(grid: torch.Tensor, scale: int) -> torch.Tensor:
    """Eq. 10 written out: sum of the in-grid window cells, divided by scale**2 (zeros outside the grid)."""
    channels, height, width = grid.shape
    half = scale // 2
    out = torch.zeros_like(grid)
    for row in range(height):
        for col in range(width):
            total = torch.zeros(channels, dtype=grid.dtype)
            for r in range(row - half, row + half + 1):
                for c in range(col - half, col + half + 1):
                    if 0 <= r < height and 0 <= c < width:
                        total += grid[:, r, c]
            out[:, row, col] = total / scale**2
    return out


# ----------------------------------------------------------------------------------------------- PAA


@pytest.mark.parametrize("scale", [3, 5])
def test_paa_equals_explicit_window_loop_on_5x5_grid(scale):
    grid = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5) - 20.0
    torch.testing.assert_close(patch_average_pool(grid, scale), looped_window_mean(grid, scale))


def test_paa_border_divides_by_full_window():
    grid = torch.ones(1, 5, 5)
    pooled = patch_average_pool(grid, 3)
    # Corner: 4 of the 9 window cells are in the grid; edge: 6 of 9; interior: 9 of 9.
    assert pooled[0, 0, 0].item() == pytest.approx(4 / 9)
    assert pooled[0, 0, 2].item() == pytest.approx(6 / 9)
    assert pooled[0, 2, 2].item() == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [3, 5])
def test_paa_matches_released_code(released, scale):
    grid = tokens_to_grid(released["paa.tokens"][:, 1:])
    pooled = grid_to_tokens(patch_average_pool(grid, scale))
    torch.testing.assert_close(pooled, released[f"paa.s{scale}"], atol=1e-5, rtol=0)


def test_paa_scale_one_is_identity():
    grid = torch.randn(2, 4, 6, 6)
    assert patch_average_pool(grid, 1) is grid


def test_paa_keeps_any_leading_dims():
    grid = torch.randn(2, 3, 4, 6, 6)
    pooled = patch_average_pool(grid, 3)
    assert pooled.shape == grid.shape
    for index in range(3):
        torch.testing.assert_close(pooled[:, index], patch_average_pool(grid[:, index], 3))


@pytest.mark.parametrize("scale", [0, 2, -3, 3.0, True])
def test_paa_rejects_scales_that_are_not_odd_positive_ints(scale):
    with pytest.raises(ValueError, match="scale"):
        patch_average_pool(torch.zeros(1, 5, 5), scale)


def test_paa_rejects_grids_without_channel_and_spatial_dims():
    with pytest.raises(ValueError, match="grid"):
        patch_average_pool(torch.zeros(5, 5), 3)


def test_patch_aggregation_stacks_scales_before_channels(released):
    grid = tokens_to_grid(released["paa.tokens"][:, 1:])
    aggregated = patch_aggregation(grid, (1, 3, 5))
    assert aggregated.shape == (3, 3, 8, 7, 7)
    torch.testing.assert_close(aggregated[:, 0], grid)
    torch.testing.assert_close(grid_to_tokens(aggregated[:, 1]), released["paa.s3"], atol=1e-5, rtol=0)
    torch.testing.assert_close(grid_to_tokens(aggregated[:, 2]), released["paa.s5"], atol=1e-5, rtol=0)


def test_patch_aggregation_keeps_leading_dims_and_scale_order():
    grid = torch.randn(2, 4, 3, 5, 5)
    aggregated = patch_aggregation(grid, [5, 1, 3])
    assert aggregated.shape == (2, 4, 3, 3, 5, 5)
    for index, scale in enumerate([5, 1, 3]):
        torch.testing.assert_close(aggregated[..., index, :, :, :], patch_average_pool(grid, scale))


def test_patch_aggregation_rejects_empty_and_even_scales():
    with pytest.raises(ValueError, match="scales"):
        patch_aggregation(torch.zeros(1, 5, 5), [])
    with pytest.raises(ValueError, match="scale"):
        patch_aggregation(torch.zeros(1, 5, 5), [1, 4])


# ------------------------------------------------------------------------------------ depth-wise adapter


def load_released_adapter(released: dict[str, torch.Tensor]) -> DepthwiseAdapter:
    adapter = DepthwiseAdapter(hidden_size=16, projection_dim=12, kernel_size=3, layer_norm_eps=1e-5)
    adapter.load_state_dict(
        {
            "layer_norm.weight": released["head.ln_weight"],
            "layer_norm.bias": released["head.ln_bias"],
            "depthwise.weight": released["head.dw_weight"],
            "pointwise.weight": released["head.pw_weight"],
        }
    )
    return adapter


def test_adapter_matches_released_code(released):
    adapter = load_released_adapter(released)
    with torch.no_grad():
        tokens = adapter.token_features(released["head.input"])
        embedding = adapter(released["head.input"])
    torch.testing.assert_close(tokens, released["head.tokens"], atol=1e-5, rtol=0)
    torch.testing.assert_close(embedding, released["head.image_embedding"], atol=1e-5, rtol=0)


def hand_adapter(patches, ln_weight, ln_bias, dw_weight, pw_weight, eps=1e-5):
    """Eq. 13 in plain Python floats for one image: LN -> depth-wise conv (zero 'same' pad) -> GELU -> point-wise."""
    num_tokens, hidden = len(patches), len(patches[0])
    normed = []
    for token in patches:
        mean = sum(token) / hidden
        var = sum((v - mean) ** 2 for v in token) / hidden
        normed.append([(v - mean) / math.sqrt(var + eps) * w + b for v, w, b in zip(token, ln_weight, ln_bias)])
    half = len(dw_weight[0]) // 2
    activated = []
    for t in range(num_tokens):
        row = []
        for ch in range(hidden):
            conv = sum(
                dw_weight[ch][k] * normed[t + k - half][ch]
                for k in range(len(dw_weight[ch]))
                if 0 <= t + k - half < num_tokens
            )
            row.append(0.5 * conv * (1.0 + math.erf(conv / math.sqrt(2.0))))
        activated.append(row)
    return [[sum(pw[ch] * row[ch] for ch in range(hidden)) for pw in pw_weight] for row in activated]


def test_adapter_equals_hand_computation():
    patches = [[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.25], [0.0, 0.75, 1.0]]
    ln_weight, ln_bias = [1.0, 0.5, 2.0], [0.1, -0.2, 0.0]
    dw_weight = [[0.2, 1.0, -0.5], [0.3, -0.4, 0.6], [-1.0, 0.5, 0.25]]
    pw_weight = [[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]]
    adapter = DepthwiseAdapter(hidden_size=3, projection_dim=2)
    with torch.no_grad():
        adapter.layer_norm.weight.copy_(torch.tensor(ln_weight))
        adapter.layer_norm.bias.copy_(torch.tensor(ln_bias))
        adapter.depthwise.weight.copy_(torch.tensor(dw_weight).unsqueeze(1))
        adapter.pointwise.weight.copy_(torch.tensor(pw_weight).unsqueeze(-1))
        tokens = adapter.token_features(torch.tensor([patches]))
        embedding = adapter(torch.tensor([patches]))

    expected_tokens = hand_adapter(patches, ln_weight, ln_bias, dw_weight, pw_weight)
    torch.testing.assert_close(tokens[0], torch.tensor(expected_tokens), atol=1e-5, rtol=0)

    normalised = [[v / math.sqrt(sum(x * x for x in token)) for v in token] for token in expected_tokens]
    expected_embedding = [sum(token[j] for token in normalised) / len(normalised) for j in range(2)]
    torch.testing.assert_close(embedding[0], torch.tensor(expected_embedding), atol=1e-5, rtol=0)
    # The mean of unit vectors is not renormalised.
    assert embedding.norm(dim=-1).item() < 1.0


def test_adapter_modules_and_init():
    adapter = DepthwiseAdapter(hidden_size=16, projection_dim=12)
    assert isinstance(adapter.layer_norm, torch.nn.LayerNorm) and adapter.layer_norm.eps == 1e-5
    assert adapter.depthwise.weight.shape == (16, 1, 3) and adapter.depthwise.bias is None
    assert adapter.depthwise.groups == 16 and adapter.depthwise.padding == (1,)
    assert adapter.pointwise.weight.shape == (12, 16, 1) and adapter.pointwise.bias is None
    # Xavier-uniform bounds: sqrt(6 / (fan_in + fan_out)) with fan = channels * kernel.
    assert adapter.depthwise.weight.abs().max() <= math.sqrt(6 / (1 * 3 + 16 * 3))
    assert adapter.pointwise.weight.abs().max() <= math.sqrt(6 / (16 + 12))
    assert adapter.depthwise.weight.std() > 0 and adapter.pointwise.weight.std() > 0


def test_adapter_keeps_sequence_length_and_batch():
    adapter = DepthwiseAdapter(hidden_size=8, projection_dim=5, kernel_size=5)
    patches = torch.randn(3, 16, 8)
    assert adapter.token_features(patches).shape == (3, 16, 5)
    assert adapter(patches).shape == (3, 5)


def test_adapter_rejects_wrong_input_width_and_even_kernel():
    adapter = DepthwiseAdapter(hidden_size=8, projection_dim=5)
    with pytest.raises(ValueError, match="patches"):
        adapter(torch.randn(2, 16, 7))
    with pytest.raises(ValueError, match="patches"):
        adapter(torch.randn(16, 8))
    with pytest.raises(ValueError, match="kernel_size"):
        DepthwiseAdapter(hidden_size=8, projection_dim=5, kernel_size=4)
