"""Invariants that hold for every valid input, checked with hypothesis on small sizes.

- FOFS (Eq. 6): for any (d, K, r) whose feature chunks hold r features, A_n A_m^T = delta_nm I_r, and each A_n
  lives on its own chunk; any other (d, K, r) is refused by name.
- Top-k routing (Eq. 1): the renormalised weights of the selected experts are non-negative and sum to 1, and
  the selected experts are the k most probable ones.
- PAA (Eq. 10): a constant map keeps its value wherever the window stays inside the grid, and the pooling
  conserves the total of any map that is zero near the border (the sum is divided by the full window).
- Metrics: scikit-learn agreement on arbitrary inputs is `tests/test_metrics.py::TestAgreementWithScikitLearn`
  (300 hypothesis examples); here, the ranking metrics depend on the order of the scores only.
- Configuration: any valid `MoECLIPConfig` on the tiny towers survives to_dict -> from_dict and
  save_pretrained -> from_pretrained unchanged; tower sizes outside their bounds are refused by name.

Example counts are kept small (deadline off) so that the file runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from moeclip_hf import MoECLIPConfig
from moeclip_hf.evaluation import auroc, average_precision, f1_max
from moeclip_hf.modeling.heads import patch_average_pool
from moeclip_hf.modeling.moe_lora import MoELoraConfig, MoELoraLayer, feature_chunks, fofs_matrices
from moeclip_hf.testing import tiny_config

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------------ FOFS


@st.composite
def fofs_sizes(draw: st.DrawFn) -> tuple[int, int, int]:
    """(d, K, r) with every chunk of d // K or d // K + 1 features holding at least r of them."""
    num_experts = draw(st.integers(1, 6))
    rank = draw(st.integers(1, 8))
    hidden_size = draw(st.integers(num_experts * rank, num_experts * rank + 24))
    return hidden_size, num_experts, rank


@FEW
@given(fofs_sizes(), st.integers(0, 2**31 - 1))
def test_fofs_matrices_are_orthonormal_within_and_orthogonal_across_experts(sizes, seed):
    hidden_size, num_experts, rank = sizes
    a = fofs_matrices(hidden_size, num_experts, rank, torch.Generator().manual_seed(seed)).double()
    assert a.shape == (num_experts, rank, hidden_size)
    gram = torch.einsum("nrd,msd->nmrs", a, a)
    expected = torch.einsum("nm,rs->nmrs", torch.eye(num_experts, dtype=a.dtype), torch.eye(rank, dtype=a.dtype))
    torch.testing.assert_close(gram, expected, atol=1e-5, rtol=0)
    for expert, (start, end) in enumerate(feature_chunks(hidden_size, num_experts)):
        assert torch.count_nonzero(a[expert, :, :start]) == 0 and torch.count_nonzero(a[expert, :, end:]) == 0


@FEW
@given(st.integers(1, 6), st.integers(2, 8), st.data())
def test_sizes_whose_chunks_are_narrower_than_the_rank_are_refused(num_experts, rank, data):
    hidden_size = data.draw(st.integers(num_experts, num_experts * rank - 1))
    with pytest.raises(ValueError, match=f"at least r={rank} features"):
        fofs_matrices(hidden_size, num_experts, rank, torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------------------------------- routing


class Identity(torch.nn.Module):
    """A stand-in encoder layer: the MoE layer needs a wrapped module with a parameter."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(width), requires_grad=False)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        return hidden_states * self.scale


@FEW
@given(st.integers(1, 8), st.data(), st.integers(0, 2**31 - 1), st.floats(0.01, 30.0))
def test_top_k_weights_are_a_distribution_over_the_k_most_probable_experts(num_experts, data, seed, spread):
    top_k = data.draw(st.integers(1, num_experts))
    config = MoELoraConfig(layers=(1,), num_experts=num_experts, top_k=top_k, r=1, use_fofs=False)
    layer = MoELoraLayer(Identity(16), "default", config, hidden_size=16, layer_index=0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.moe_router["default"].weight.copy_(torch.randn(num_experts, 16, generator=generator) * spread)
    probs, weights, indices = layer.route(torch.randn(3, 5, 16, generator=generator), "default")

    assert weights.shape == indices.shape == (3, 5, top_k)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5), atol=1e-6, rtol=0)
    assert (indices.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct experts per token
    chosen = probs.gather(-1, indices)
    left_out = probs.scatter(-1, indices, -1.0).amax(-1, keepdim=True)
    assert (chosen.amin(-1, keepdim=True) >= left_out).all()
    torch.testing.assert_close(weights, chosen / chosen.sum(-1, keepdim=True))


# ------------------------------------------------------------------------------------------------------- PAA


@FEW
@given(
    st.sampled_from([1, 3, 5, 7]), st.integers(1, 12), st.floats(-1e3, 1e3, allow_subnormal=False), st.integers(1, 3)
)
def test_paa_keeps_a_constant_map_where_the_window_is_inside_the_grid(scale, extra, value, channels):
    grid_size = scale + extra - 1
    grid = torch.full((2, channels, grid_size, grid_size), value, dtype=torch.float64)
    pooled = patch_average_pool(grid, scale)
    half = scale // 2
    interior = pooled[..., half : grid_size - half, half : grid_size - half]
    assert interior.numel() > 0
    torch.testing.assert_close(interior, torch.full_like(interior, value), atol=1e-9 * max(1.0, abs(value)), rtol=0)
    assert interior.mean().item() == pytest.approx(value, abs=1e-9 * max(1.0, abs(value)))
    # Towards the border the window sees zeros and the full s*s divisor: |value| can only shrink there.
    assert (pooled.abs() <= abs(value) * (1 + 1e-12)).all()


@FEW
@given(st.sampled_from([3, 5, 7]), st.integers(1, 10), st.integers(0, 2**31 - 1))
def test_paa_conserves_the_total_of_a_map_that_vanishes_near_the_border(scale, inner, seed):
    half = scale // 2
    size = inner + 2 * half
    grid = torch.zeros(1, 2, size, size, dtype=torch.float64)
    rng = torch.Generator().manual_seed(seed)
    inside = torch.randn(1, 2, inner, inner, generator=rng, dtype=torch.float64)
    grid[..., half : half + inner, half : half + inner] = inside
    pooled = patch_average_pool(grid, scale)
    torch.testing.assert_close(pooled.sum(dim=(-1, -2)), grid.sum(dim=(-1, -2)), atol=1e-9, rtol=0)


# --------------------------------------------------------------------------------------------------- metrics


@st.composite
def scores_with_both_labels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    size = draw(st.integers(2, 60))
    labels = np.array(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    labels[0], labels[-1] = 0, 1
    levels = draw(st.sampled_from([2, 4, 1000]))  # few levels: many ties
    scores = np.array(draw(st.lists(st.integers(0, levels), min_size=size, max_size=size)), dtype=np.float64) / levels
    return scores, labels


@FEW
@given(scores_with_both_labels())
def test_ranking_metrics_depend_only_on_the_order_of_the_scores(case):
    scores, labels = case
    ranks = np.unique(scores, return_inverse=True)[1].astype(np.float64) * 7.5 - 3.0  # strictly increasing map
    for metric in (auroc, average_precision, f1_max):
        assert metric(ranks, labels) == pytest.approx(metric(scores, labels), abs=1e-12)
    # Reversing the order reverses the ROC curve (ties count one half either way), as in scikit-learn.
    assert auroc(-scores, labels) == pytest.approx(1.0 - auroc(scores, labels), abs=1e-12)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


# ------------------------------------------------------------------------------------------------ the config


@st.composite
def valid_configs(draw: st.DrawFn) -> MoECLIPConfig:
    """A valid MoECLIPConfig on the tiny towers (4 layers, patch 8): random MoE, feature, PAA and head settings."""
    grid = draw(st.sampled_from([4, 8, 12]))
    layers = list(range(1, 5))
    feature_layers = sorted(draw(st.sets(st.sampled_from(layers), min_size=1)))
    moe_layers = draw(st.lists(st.sampled_from(layers), min_size=1, max_size=4, unique=True))
    num_experts = draw(st.integers(1, 16))
    moe = {
        "layers": moe_layers,
        "num_experts": num_experts,
        "top_k": draw(st.integers(1, num_experts)),
        "r": draw(st.integers(1, 64)),
        "lora_alpha": draw(st.floats(0.125, 64.0)),
        "lora_dropout": draw(st.floats(0.0, 0.9)),
        "residual_weight": draw(st.floats(0.0, 1.0)),
        "eps": draw(st.floats(1e-9, 1e-3)),
        "use_fofs": draw(st.booleans()),
        "fofs_seed": draw(st.integers(0, 2**31 - 1)),
    }
    odd_scales = [scale for scale in (1, 3, 5, 7, 9, 11) if scale <= grid]
    return tiny_config(
        image_size=8 * grid,
        feature_layers=feature_layers,
        moe_config=moe,
        paa_scales=draw(st.lists(st.sampled_from(odd_scales), min_size=1, max_size=3)),
        logit_scale=draw(st.floats(1.0, 200.0)),
        segmentation_leaky_relu=draw(st.booleans()),
        trainable_text_projection=draw(st.booleans()),
        image_head=draw(st.sampled_from(["adapter", "linear"])),
        adapter_kernel_size=draw(st.sampled_from([1, 3, 5])),
        num_normal_prompts=draw(st.integers(1, 15)),
        domain=draw(st.sampled_from(["industrial", "medical"])),
        blur_kernel_sizes={"industrial": draw(st.sampled_from([1, 3, 7])), "medical": draw(st.sampled_from([5, 9]))},
        blur_sigmas={"industrial": draw(st.floats(0.1, 4.0)), "medical": draw(st.floats(0.1, 4.0))},
        score_fusion_weights={"industrial": draw(st.floats(0.0, 1.0)), "medical": draw(st.floats(0.0, 1.0))},
        anomaly_threshold=draw(st.floats(0.0, 1.0)),
        etf_loss_weight=draw(st.floats(0.0, 1.0)),
        balance_loss_weight=draw(st.floats(0.0, 1.0)),
    )


def comparable(config: MoECLIPConfig) -> dict:
    """The config's dict without the fields that record the writer rather than the model."""
    values = config.to_dict()
    values.pop("transformers_version", None)
    return values


@FEW
@given(valid_configs())
def test_any_valid_config_round_trips_through_a_dict(config):
    restored = MoECLIPConfig.from_dict(config.to_dict())
    assert comparable(restored) == comparable(config)
    assert restored.moe_config == config.moe_config
    assert restored.grid_size == config.grid_size


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valid_configs())
def test_any_valid_config_round_trips_through_config_json(tmp_path_factory, config):
    folder = tmp_path_factory.mktemp("config")
    config.save_pretrained(folder)
    assert comparable(MoECLIPConfig.from_pretrained(folder)) == comparable(config)


TOWER_FIELDS = [
    ("vision", "hidden_size"),
    ("vision", "intermediate_size"),
    ("vision", "num_hidden_layers"),
    ("text", "hidden_size"),
    ("text", "num_hidden_layers"),
    ("text", "vocab_size"),
    ("text", "max_position_embeddings"),
    ("text", "projection_dim"),
]


@FEW
@given(st.sampled_from(TOWER_FIELDS), st.one_of(st.integers(-(10**12), 0), st.integers(10**6 + 1, 10**15)))
def test_tower_sizes_outside_their_bounds_are_refused_by_name(field, value):
    tower, name = field
    if name == "hidden_size":
        value *= 4  # stay a multiple of the 4 heads, which CLIP's own config checks first
    layers = {"feature_layers": [2, 4], "moe_config": {"layers": [2, 4], "r": 4}}  # as a config.json spells them out
    with pytest.raises(ValueError, match=f"{tower}_config.{name} must be an integer"):
        tiny_config(**{tower: {name: value}}, **layers)
