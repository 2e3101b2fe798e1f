"""The ablation switches change the model exactly as documented (README, "Ablation switches")."""

import pytest
import torch
from PIL import Image

from moeclip_hf import MoECLIPModel
from moeclip_hf.modeling.heads import DepthwiseAdapter
from moeclip_hf.testing import tiny_config, tiny_processor
from moeclip_hf.training import parse_args


def trainable(model: MoECLIPModel) -> dict[str, int]:
    return {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}


def forward(model: MoECLIPModel, **kwargs):
    inputs = tiny_processor()(images=[Image.new("RGB", (64, 64), (90, 120, 30))] * 2, class_names="bottle", return_tensors="pt")
    masks = torch.zeros(2, 1, 64, 64)
    masks[1, :, 8:24, 8:24] = 1
    return model.train()(**inputs, masks=masks, labels=torch.tensor([0, 1]), **kwargs)


def test_no_fofs_makes_a_trainable_and_drops_the_frozen_buffers():
    with_fofs, without = MoECLIPModel(tiny_config()), MoECLIPModel(tiny_config(moe_config={"layers": [2, 4], "r": 4, "use_fofs": False}))
    d, k, r = 64, 4, 4
    extra = sum(trainable(without).values()) - sum(trainable(with_fofs).values())
    assert extra == 2 * k * r * d  # one A of (K, r, d) per MoE layer
    assert any(".moe_lora_A." in name for name in trainable(without))
    assert not any("moe_fofs_A" in name for name, _ in without.named_buffers())


@pytest.mark.parametrize("field", ["etf_loss_weight", "balance_loss_weight"])
def test_a_zero_loss_weight_removes_that_loss_from_the_total(field):
    torch.manual_seed(0)
    model = MoECLIPModel(tiny_config(**{field: 0.0}))
    out = forward(model)
    kept = "balance_loss" if field == "etf_loss_weight" else "etf_loss"
    expected = out.segmentation_loss + out.classification_loss + 0.01 * out[kept]
    torch.testing.assert_close(out.loss, expected)


def test_paa_scale_one_only_gives_one_map_per_layer():
    out = forward(MoECLIPModel(tiny_config(paa_scales=[1])))
    assert out.patch_logits.shape[2] == 1


def test_a_linear_image_head_replaces_the_depthwise_adapter():
    model = MoECLIPModel(tiny_config(image_head="linear"))
    assert isinstance(model.image_head, torch.nn.Linear) and model.image_head.bias is None
    assert isinstance(MoECLIPModel(tiny_config()).image_head, DepthwiseAdapter)
    assert forward(model).image_logits.shape == (2, 2)


def test_experts_top_k_layers_and_lambda_reach_every_moe_layer():
    model = MoECLIPModel(tiny_config(moe_config={"layers": [1, 3], "num_experts": 3, "top_k": 1, "r": 4, "residual_weight": 0.3}))
    layers = model.moe_layers()
    assert [layer.layer_index for layer in layers] == [0, 2]
    for layer in layers:
        config = layer.moe_config["default"]
        assert layer.moe_router["default"].weight.shape == (3, 64)
        assert (config.top_k, config.residual_weight) == (1, 0.3)
    out = forward(model, return_routing=True)
    assert out.selected_experts[0].shape[-1] == 1


def test_feature_layers_choose_the_maps():
    out = forward(MoECLIPModel(tiny_config(feature_layers=[1, 2, 3])))
    assert out.patch_logits.shape[1] == 3


def test_train_py_flags_map_onto_the_config(tmp_path):
    model_args, _, _ = parse_args([
        "--clip", "tiny", "--dataset", "synthetic", "--output-dir", str(tmp_path), "--no-fofs", "--etf-loss-weight", "0",
        "--paa-scales", "1", "--image-head", "linear", "--num-experts", "2", "--top-k", "1", "--moe-layers", "2", "4",
        "--feature-layers", "4", "--residual-weight", "0.2",
    ])
    overrides = model_args.config_overrides()
    assert overrides["moe_config"] == {"num_experts": 2, "top_k": 1, "layers": [2, 4], "residual_weight": 0.2, "use_fofs": False}
    assert (overrides["paa_scales"], overrides["image_head"], overrides["feature_layers"]) == ([1], "linear", [4])
    assert overrides["etf_loss_weight"] == 0.0
    config = tiny_config(**overrides)
    assert config.moe_config.use_fofs is False and config.paa_scales == [1]
