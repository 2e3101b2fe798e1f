"""The MoE-LoRA tuner (METHOD.md, "MoE-LoRA at the output of layers l", "Auxiliary losses")."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionConfig, CLIPVisionModel

from moeclip_hf.modeling.moe_lora import (
    MoELoraConfig,
    MoELoraLayer,
    MoELoraModel,
    balance_loss,
    etf_loss,
    feature_chunks,
    fofs_matrices,
)

FIXTURES = load_file(str(Path(__file__).parent / "fixtures" / "released_parity.safetensors"))


def tiny_tower(hidden_size: int = 64, layers: int = 4, image_size: int = 32, patch_size: int = 8) -> CLIPVisionModel:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    return CLIPVisionModel(config).eval()


def fixture_layer(top_k: int = 2) -> MoELoraLayer:
    """A MoE layer (d = 66) around an identity 'encoder layer', loaded with the released fixture's weights."""
    config = MoELoraConfig(layers=(1,), num_experts=4, top_k=top_k, r=8, lora_alpha=16, lora_dropout=0.0)
    layer = MoELoraLayer(IdentityLayer(66), "default", config, hidden_size=66, layer_index=0)
    with torch.no_grad():
        layer.moe_router["default"].weight.copy_(FIXTURES["moe.router_weight"])
        layer.moe_fofs_A["default"].copy_(FIXTURES["moe.lora_A"])
        layer.moe_lora_B["default"].copy_(FIXTURES["moe.lora_B"])
    return layer


class IdentityLayer(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(width), requires_grad=False)

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        return hidden_states * self.scale


# --- FOFS (Eq. 6) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden_size, num_experts, rank", [(64, 4, 8), (66, 4, 8), (50, 3, 5), (17, 1, 4)])
def test_fofs_matrices_are_mutually_orthogonal_and_orthonormal(hidden_size, num_experts, rank):
    a = fofs_matrices(hidden_size, num_experts, rank, torch.Generator().manual_seed(3))
    assert a.shape == (num_experts, rank, hidden_size)
    for n in range(num_experts):
        for m in range(num_experts):
            product = a[n] @ a[m].T
            expected = torch.eye(rank) if n == m else torch.zeros(rank, rank)
            torch.testing.assert_close(product, expected, atol=1e-5, rtol=0)


def test_fofs_chunks_are_contiguous_with_the_first_remainder_chunks_one_larger():
    assert feature_chunks(66, 4) == [(0, 17), (17, 34), (34, 50), (50, 66)]
    assert feature_chunks(64, 4) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    a = fofs_matrices(66, 4, 8, torch.Generator().manual_seed(0))
    for n, (start, end) in enumerate(feature_chunks(66, 4)):
        outside = torch.cat([a[n, :, :start], a[n, :, end:]], dim=1)
        assert torch.count_nonzero(outside) == 0
        assert torch.count_nonzero(a[n, :, start:end]) > 0


def test_fofs_matches_the_released_chunk_layout():
    a = FIXTURES["moe.lora_A"]
    for n, (start, end) in enumerate(feature_chunks(66, 4)):
        torch.testing.assert_close(a[n] @ a[n].T, torch.eye(8), atol=1e-5, rtol=0)
        assert torch.count_nonzero(a[n, :, :start]) == 0 and torch.count_nonzero(a[n, :, end:]) == 0


def test_a_chunk_smaller_than_the_rank_is_refused():
    with pytest.raises(ValueError, match="chunk"):
        MoELoraModel(tiny_tower(hidden_size=24), MoELoraConfig(layers=(1,), num_experts=4, r=8))


# --- the layer against the authors' released code --------------------------------------------------------


def test_router_probabilities_and_expert_outputs_match_the_released_code():
    layer = fixture_layer()
    x = FIXTURES["moe.x"]
    probs, weights, indices = layer.route(x, "default")
    torch.testing.assert_close(probs, FIXTURES["moe.router_probs"], atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.expert_outputs(x, "default"), FIXTURES["moe.expert_outputs"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("training, path", [(True, None), (False, "fused"), (False, "sparse")])
def test_mixture_and_output_match_the_released_code_in_every_compute_path(training, path):
    layer = fixture_layer().train(training)
    if path:
        layer.set_inference_path(path)
    x = FIXTURES["moe.x"]
    out = layer.forward_with_aux(x)
    torch.testing.assert_close(out.hidden_states, FIXTURES["moe.output"], atol=1e-5, rtol=0)
    probs, weights, indices = layer.route(x, "default")
    for mixture in (layer.sparse_mixture(x, weights, indices, "default"), layer.fused_mixture(x, weights, indices, "default")):
        torch.testing.assert_close(mixture, FIXTURES["moe.mix"], atol=1e-5, rtol=0)


def test_an_unknown_inference_path_is_refused():
    with pytest.raises(ValueError, match="inference path"):
        fixture_layer().set_inference_path("dense")


def test_training_losses_match_the_released_code():
    layer = fixture_layer().train()
    out = layer.forward_with_aux(FIXTURES["moe.x"])
    torch.testing.assert_close(out.etf_loss, FIXTURES["moe.etf_loss"][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.balance_loss, FIXTURES["moe.balance_loss_paper"][0], atol=1e-6, rtol=0)


def test_steps_one_to_five_by_hand_on_one_token():
    """Router, top-k renormalisation, experts, mix, norm match and residual written out for one token."""
    layer = fixture_layer()
    x = FIXTURES["moe.x"][0, 3]
    w_g, a, b = FIXTURES["moe.router_weight"], FIXTURES["moe.lora_A"], FIXTURES["moe.lora_B"]
    p = torch.softmax(w_g @ x, dim=0)
    top = sorted(range(4), key=lambda n: -p[n].item())[:2]
    r = {n: p[n] / (p[top[0]] + p[top[1]]) for n in top}
    m = sum(r[n] * (b[n] @ (a[n] @ x)) * (16 / 8) for n in top)
    m_matched = m * x.norm() / (m.norm() + 1e-6)
    expected = 0.1 * m_matched + 0.9 * x
    probs, weights, indices = layer.route(x[None, None], "default")
    assert set(indices[0, 0].tolist()) == set(top)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 1))
    torch.testing.assert_close(layer.eval().forward_with_aux(x[None, None]).hidden_states[0, 0], expected, atol=1e-5, rtol=0)


# --- top-k routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_experts, top_k", [(4, 2), (4, 4), (1, 1), (3, 1)])
def test_top_k_weights_sum_to_one_and_vanish_outside_the_selection(num_experts, top_k):
    config = MoELoraConfig(layers=(1,), num_experts=num_experts, top_k=top_k, r=4)
    layer = MoELoraLayer(IdentityLayer(48), "default", config, hidden_size=48, layer_index=0)
    torch.nn.init.normal_(layer.moe_router["default"].weight)
    probs, weights, indices = layer.route(torch.randn(2, 7, 48), "default")
    dense = torch.zeros_like(probs).scatter(-1, indices, weights)
    torch.testing.assert_close(dense.sum(-1), torch.ones(2, 7))
    assert ((dense > 0).sum(-1) <= top_k).all()
    assert torch.equal(probs.topk(top_k, dim=-1).indices.sort(-1).values, indices.sort(-1).values)


def test_the_router_starts_uniform():
    layer = MoELoraLayer(IdentityLayer(32), "default", MoELoraConfig(layers=(1,), r=4), hidden_size=32, layer_index=0)
    probs, _, _ = layer.route(torch.randn(3, 5, 32), "default")
    torch.testing.assert_close(probs, torch.full((3, 5, 4), 0.25))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": 5, "num_experts": 4}, "top_k"),
        ({"r": 0}, "rank"),
        ({"r": -2}, "rank"),
        ({"num_experts": 10**9}, "num_experts"),
        ({"layers": (0,)}, "1-based"),
        ({"residual_weight": 1.5}, "residual_weight"),
    ],
)
def test_invalid_configurations_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MoELoraConfig(**kwargs)


def test_a_target_layer_beyond_the_tower_is_refused():
    with pytest.raises(ValueError, match="beyond the tower"):
        MoELoraModel(tiny_tower(layers=4), MoELoraConfig(layers=(2, 5), r=4))


def test_a_full_clip_model_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="vision tower"):
        MoELoraModel(torch.nn.Linear(2, 2), MoELoraConfig(layers=(1,), r=4))


# --- the tuner on a CLIP tower ---------------------------------------------------------------------------


def encoder_outputs(tower: CLIPVisionModel, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """The hidden states leaving every encoder layer, read by running the layers one by one."""
    hidden = tower.pre_layrnorm(tower.embeddings(pixel_values))
    outputs = []
    for layer in tower.encoder.layers:
        hidden = layer(hidden, None)
        outputs.append(hidden)
    return outputs


@pytest.mark.parametrize("hidden_size, layers, image_size, patch_size", [(64, 4, 32, 8), (66, 3, 28, 14)])
def test_at_initialisation_each_target_layer_scales_its_input_by_one_minus_lambda(hidden_size, layers, image_size, patch_size):
    tower = tiny_tower(hidden_size, layers, image_size, patch_size)
    targets = (1, layers)
    tuned = MoELoraModel(tower, MoELoraConfig(layers=targets, r=4)).eval()
    pixel_values = torch.randn(2, 3, image_size, image_size)
    hidden = tower.pre_layrnorm(tower.embeddings(pixel_values))
    for index, layer in enumerate(tower.encoder.layers):
        inner = layer.base_layer if isinstance(layer, MoELoraLayer) else layer
        expected = inner(hidden, None)
        if index + 1 in targets:
            expected = 0.9 * expected
        hidden = layer(hidden, None)
        torch.testing.assert_close(hidden, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(tuned(pixel_values=pixel_values).last_hidden_state, hidden)


@pytest.mark.parametrize("hidden_size", [64, 66])
def test_dense_training_path_and_both_inference_paths_agree(hidden_size):
    tower = tiny_tower(hidden_size, 3, 28, 14)
    tuned = MoELoraModel(tower, MoELoraConfig(layers=(1, 3), r=4, lora_dropout=0.0))
    torch.manual_seed(1)
    for layer in tuned.moe_layers():
        torch.nn.init.normal_(layer.moe_router["default"].weight)
        torch.nn.init.normal_(layer.moe_lora_B["default"], std=0.2)
    hidden = torch.randn(3, 5, hidden_size)
    layer = tuned.moe_layers()[0]
    dense = layer.train().mix(hidden).hidden_states
    for path in ("sparse", "fused"):
        layer.set_inference_path(path)
        torch.testing.assert_close(dense, layer.eval().mix(hidden).hidden_states, atol=1e-5, rtol=0)
    pixel_values = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(
        tuned.train()(pixel_values=pixel_values).last_hidden_state,
        tuned.eval()(pixel_values=pixel_values).last_hidden_state,
        atol=1e-5,
        rtol=0,
    )


def test_only_routers_and_b_train_with_fofs_and_the_count_is_exact():
    hidden_size, k, r = 64, 4, 8
    tuned = MoELoraModel(tiny_tower(hidden_size), MoELoraConfig(layers=(2, 4), num_experts=k, r=r))
    trainable = {name: p for name, p in tuned.named_parameters() if p.requires_grad}
    assert all(".moe_router." in name or ".moe_lora_B." in name for name in trainable)
    for layer in tuned.moe_layers():
        count = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        assert count == k * hidden_size * r + hidden_size * k
        assert not any(p.requires_grad for p in layer.base_layer.parameters())
    frozen = [name for name, p in tuned.named_parameters() if not p.requires_grad]
    assert any("embeddings.patch_embedding" in name for name in frozen)


def test_without_fofs_a_is_a_trainable_parameter():
    tuned = MoELoraModel(tiny_tower(), MoELoraConfig(layers=(2,), r=8, use_fofs=False))
    layer = tuned.moe_layers()[0]
    assert "default" not in layer.moe_fofs_A
    assert layer.moe_lora_A["default"].requires_grad
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == 2 * 4 * 64 * 8 + 64 * 4


def test_an_optimiser_step_changes_router_and_b_but_no_clip_weight_and_no_fofs_matrix():
    tower = tiny_tower()
    tuned = MoELoraModel(tower, MoELoraConfig(layers=(2, 4), r=8)).train()
    before = {name: t.clone() for name, t in tuned.state_dict().items()}
    optimiser = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        out = tuned(pixel_values=torch.randn(2, 3, 32, 32)).last_hidden_state
        etf, balance = tuned.auxiliary_losses()
        (out.pow(2).mean() + etf + balance).backward()
        optimiser.step()
        optimiser.zero_grad()
    after = tuned.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".moe_router." in name or ".moe_lora_B." in name for name in changed)
    assert any(".moe_lora_B." in name for name in changed)


def test_fofs_matrices_survive_save_and_load_without_being_redrawn(tmp_path):
    tuned = MoELoraModel(tiny_tower(), MoELoraConfig(layers=(2, 4), r=8, fofs_seed=0))
    state = {k: v.contiguous() for k, v in tuned.state_dict().items() if ".moe_" in k}
    save_file(state, str(tmp_path / "adapter.safetensors"))
    reloaded = MoELoraModel(tiny_tower(), MoELoraConfig(layers=(2, 4), r=8, fofs_seed=123))
    key = next(k for k in state if "moe_fofs_A" in k)
    assert not torch.equal(reloaded.state_dict()[key], state[key])
    missing, unexpected = reloaded.load_state_dict(load_file(str(tmp_path / "adapter.safetensors")), strict=False)
    assert not unexpected and not any(".moe_" in k for k in missing)
    torch.testing.assert_close(reloaded.state_dict()[key], state[key], rtol=0, atol=0)


# --- auxiliary losses ------------------------------------------------------------------------------------


def test_etf_loss_equals_a_hand_computation_on_three_experts():
    outputs = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # one token, K = 3, d = 2
    # unit vectors e0 = (1,0), e1 = (0,1), e2 = (1,0); Gram [[1,0,1],[0,1,0],[1,0,1]]; target off-diagonal -1/2
    off = [(0 + 0.5) ** 2, (1 + 0.5) ** 2, (0 + 0.5) ** 2]  # pairs (0,1), (0,2), (1,2)
    expected = 2 * sum(off) / 9
    torch.testing.assert_close(etf_loss(outputs), torch.tensor(expected))


def test_etf_loss_is_zero_for_an_exact_simplex_and_for_one_expert():
    angles = torch.tensor([0.0, 2 * torch.pi / 3, 4 * torch.pi / 3])
    simplex = torch.stack([angles.cos(), angles.sin()], dim=-1) * torch.tensor([[1.0], [2.0], [0.5]])
    assert etf_loss(simplex[None, None]).item() == pytest.approx(0.0, abs=1e-7)
    assert etf_loss(torch.randn(4, 1, 8)).item() == 0.0


def test_balance_loss_equals_a_hand_computation():
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]], [[0.2, 0.2, 0.6], [0.4, 0.4, 0.2]]])
    load = [0.5 + 0.1 + 0.2 + 0.4, 0.25 + 0.6 + 0.2 + 0.4, 0.25 + 0.3 + 0.6 + 0.2]
    mean = sum(load) / 3
    variance = sum((b - mean) ** 2 for b in load) / 2
    torch.testing.assert_close(balance_loss(probs), torch.tensor(variance / (mean**2 + 1e-6)))
    assert balance_loss(torch.ones(2, 3, 1)).item() == 0.0


def test_routing_is_available_for_visualisation():
    layer = fixture_layer().eval()
    out = layer.forward_with_aux(FIXTURES["moe.x"])
    assert out.router_probs.shape == (2, 10, 4) and out.top_k_indices.shape == (2, 10, 2)
    assert out.etf_loss is None and out.balance_loss is None
