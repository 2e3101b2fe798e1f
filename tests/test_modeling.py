"""MoECLIPConfig / MoECLIPModel / MoECLIPProcessor: the full forward, its outputs, save and load."""

import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from PIL import Image
from transformers import AutoConfig, AutoModel, CLIPConfig, CLIPModel

from moeclip_hf import MoECLIPConfig, MoECLIPModel, MoECLIPProcessor, MoELoraConfig
from moeclip_hf.benchmarks import BENCHMARKS
from moeclip_hf.configuration import COMPATIBILITY_FIELDS
from moeclip_hf.modeling.clip_weights import resize_position_embeddings
from moeclip_hf.modeling.heads import patch_aggregation
from moeclip_hf.modeling.maps import fuse_image_score, image_anomaly_score, patch_logits, probability_anomaly_map
from moeclip_hf.modeling.moe_lora import MoELoraLayer
from moeclip_hf.modeling.prompts import class_wording, describe
from moeclip_hf.testing import randomize_moe, tiny_config, tiny_processor


def images(count: int, size=(40, 30)) -> list[Image.Image]:
    generator = torch.Generator().manual_seed(count)
    return [
        Image.fromarray((torch.rand(size[1], size[0], 3, generator=generator) * 255).byte().numpy()) for _ in range(count)
    ]


@pytest.fixture(scope="module")
def tiny():
    return randomize_moe(MoECLIPModel(tiny_config())).eval(), tiny_processor()


GEOMETRIES = [
    pytest.param({"vision": {"patch_size": 14, "image_size": 70}, "image_size": 70}, id="patch14-70px"),
    pytest.param({"vision": {"patch_size": 16, "image_size": 96}, "image_size": 96}, id="patch16-96px"),
]


@pytest.mark.parametrize("overrides", GEOMETRIES)
@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_have_the_documented_shapes_and_ranges(overrides, batch):
    config = tiny_config(**overrides)
    model = randomize_moe(MoECLIPModel(config)).eval()
    processor = tiny_processor(config.image_size)
    names = ["bottle", "brain scan", "metal_nut"][:batch]
    with torch.no_grad():
        out = model(**processor(images=images(batch), class_names=names, return_tensors="pt"))
    size, grid = config.image_size, config.grid_size
    assert out.anomaly_map.shape == (batch, size, size)
    assert out.anomaly_score.shape == (batch,)
    assert out.patch_logits.shape == (batch, len(config.feature_layers), len(config.paa_scales), 2, grid, grid)
    assert out.image_logits.shape == (batch, 2)
    assert out.text_embeds.shape == (batch, 2, config.projection_dim)
    for tensor in (out.anomaly_map, out.anomaly_score):
        assert tensor.min() >= 0 and tensor.max() <= 1
    assert out.loss is None and out.etf_loss is None


def test_each_image_is_compared_with_its_own_class_prompts(tiny):
    model, processor = tiny
    pictures = images(2)
    with torch.no_grad():
        mixed = model(**processor(images=pictures, class_names=["bottle", "pill"], return_tensors="pt"))
        second = model(**processor(images=pictures[1:], class_names=["pill"], return_tensors="pt"))
    torch.testing.assert_close(mixed.anomaly_map[1:], second.anomaly_map, atol=1e-5, rtol=0)
    assert not torch.allclose(mixed.text_embeds[0], mixed.text_embeds[1])


def test_map_and_score_follow_the_single_image_definitions(tiny):
    model, processor = tiny
    config = model.config
    with torch.no_grad():
        out = model(**processor(images=images(2), class_names="bottle", return_tensors="pt"), domain="medical")
    expected_map = probability_anomaly_map(out.patch_logits.flatten(1, 2), config.image_size, 9, 1.5)
    torch.testing.assert_close(out.anomaly_map, expected_map)
    expected_score = fuse_image_score(expected_map.flatten(1).amax(1), image_anomaly_score(out.image_logits), 1.0)
    torch.testing.assert_close(out.anomaly_score, expected_score)
    torch.testing.assert_close(out.anomaly_score, out.anomaly_map.flatten(1).amax(1))


def test_text_embeddings_are_the_normalised_mean_of_normalised_sentences(tiny):
    model, processor = tiny
    prompts = processor.tokenize_prompts(["bottle"])
    ids, mask = prompts["prompt_input_ids"][0], prompts["prompt_attention_mask"][0]
    with torch.no_grad():
        sentences = F.normalize(model.text_model(input_ids=ids, attention_mask=mask).text_embeds, dim=-1)
    expected = F.normalize(torch.stack([sentences[:6].mean(0), sentences[6:].mean(0)]), dim=-1)
    torch.testing.assert_close(model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"])[0], expected)


def test_a_class_is_encoded_once_per_process(tiny):
    model, processor = tiny
    model.clear_prompt_cache()
    calls = []
    handle = model.text_model.text_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        inputs = processor(images=images(3), class_names=["bottle", "bottle", "screw"], return_tensors="pt")
        with torch.no_grad():
            model(**inputs)
            model(**inputs)
    finally:
        handle.remove()
    assert len(calls) == 2


def test_patch_features_are_the_moe_layers_outputs_not_the_pre_moe_hidden_states(tiny):
    model, processor = tiny
    pixel_values = processor(images=images(1), return_tensors="pt")["pixel_values"]
    recorded = {}
    handles = [
        layer.register_forward_hook(lambda module, args, output, i=i: recorded.__setitem__(i, output))
        for i, layer in enumerate(model.vision_model.encoder.layers)
    ]
    try:
        with torch.no_grad():
            features = model.get_patch_features(pixel_values)
            hidden_states = model.vision_model(pixel_values, output_hidden_states=True).hidden_states
    finally:
        for handle in handles:
            handle.remove()
    for position, layer in enumerate(model.config.feature_layers):
        assert isinstance(model.vision_model.encoder.layers[layer - 1], MoELoraLayer)
        torch.testing.assert_close(features.patch_features[position], recorded[layer - 1][:, 1:], rtol=0, atol=0)
        # transformers' own capture records the wrapped layer's output, i.e. before the MoE rewrote it
        assert not torch.allclose(hidden_states[layer], recorded[layer - 1])


# ------------------------------------------------------------------------- segmentation features (Eq. 10-11)


def small_model(**overrides) -> MoECLIPModel:
    """A 5 x 5 patch grid of width 6 and text embeddings of size 4, with a non-trivial post layer norm."""
    config = tiny_config(
        vision={"hidden_size": 6, "intermediate_size": 12, "num_attention_heads": 2, "patch_size": 8},
        text={"projection_dim": 4},
        image_size=40,
        moe_config={"layers": [2, 4], "r": 1},
        **overrides,
    )
    model = MoECLIPModel(config).eval()
    with torch.no_grad():
        model.vision_model.post_layernorm.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 1.5, 0.8, 1.2]))
        model.vision_model.post_layernorm.bias.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3, -0.1, 0.2]))
        model.segmentation_projections[0].weight.copy_(torch.arange(24.0).reshape(4, 6).sin())
    return model


def fixed_states() -> torch.Tensor:
    """(1, 1 + 25, 6) post-MoE states: CLS first, then a 5 x 5 grid whose tokens differ in mean and spread."""
    values = torch.arange(26 * 6, dtype=torch.float64).reshape(1, 26, 6)
    return torch.cos(values * 0.37) * (1 + values.remainder(5)) + values.remainder(7) - 3


def hand_window_mean(grid: list[list[list[float]]], scale: int) -> list[list[list[float]]]:
    """Eq. 10 written out on a g x g list of d-vectors: in-grid window cells summed, divided by scale**2."""
    size, half = len(grid), scale // 2
    out = []
    for row in range(size):
        out.append([])
        for col in range(size):
            total = [0.0] * len(grid[0][0])
            for r in range(row - half, row + half + 1):
                for c in range(col - half, col + half + 1):
                    if 0 <= r < size and 0 <= c < size:
                        total = [a + b for a, b in zip(total, grid[r][c])]
            out[-1].append([value / scale**2 for value in total])
    return out


def hand_layer_norm(vector: list[float], weight: list[float], bias: list[float], eps: float) -> list[float]:
    mean = sum(vector) / len(vector)
    variance = sum((value - mean) ** 2 for value in vector) / len(vector)
    return [(value - mean) / (variance + eps) ** 0.5 * w + b for value, w, b in zip(vector, weight, bias)]


def hand_project(vector: list[float], weight: list[list[float]]) -> list[float]:
    return [sum(w * v for w, v in zip(row, vector)) for row in weight]


def hand_features(model: MoECLIPModel, states: torch.Tensor, scale: int, pool_first: bool) -> torch.Tensor:
    """(e, g, g) features of the first image: proj(LN(PAA(x))) when `pool_first`, else proj(PAA(LN(x)))."""
    norm = model.vision_model.post_layernorm
    weight, bias, eps = norm.weight.tolist(), norm.bias.tolist(), norm.eps
    projection = model.segmentation_projections[0].weight.tolist()
    size = model.config.grid_size
    tokens = states[0, 1:].tolist()
    if not pool_first:
        tokens = [hand_layer_norm(token, weight, bias, eps) for token in tokens]
    grid = hand_window_mean([tokens[row * size : (row + 1) * size] for row in range(size)], scale)
    if pool_first:
        grid = [[hand_layer_norm(token, weight, bias, eps) for token in row] for row in grid]
    projected = [[hand_project(token, projection) for token in row] for row in grid]
    return torch.tensor(projected, dtype=torch.float64).permute(2, 0, 1)


def hand_logits(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """100 * cos of every patch feature (e, g, g) with [T_N, T_A] (2, e) -> (2, g, g)."""
    unit = features / features.norm(dim=0, keepdim=True)
    return 100 * torch.einsum("ce,ehw->chw", text, unit)


def feature_states(model: MoECLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """The post-MoE token states (CLS first) of the feature layers, stacked (B, L, N, d), as the tuner runs the tower."""
    layers = model.config.feature_layers
    states = model.moe_tuner.encoder_states(pixel_values, max(layers))
    return torch.stack([hidden for layer, hidden in states if layer in layers], dim=1)


def segmentation_features(model: MoECLIPModel, states: torch.Tensor, position: int) -> torch.Tensor:
    """The model's proj(LN(PAA_s(x))) of feature layer `position` for every scale, stacked: (B, S, e, g, g)."""
    return torch.stack(list(model._scale_features(states, position)), dim=1)


def test_paa_pools_the_raw_states_before_the_layer_norm_and_the_projection():
    model = small_model().double()
    states = fixed_states()
    text = F.normalize(torch.tensor([[0.3, -1.0, 0.5, 0.2], [1.0, 0.4, -0.6, 0.1]], dtype=torch.float64), dim=-1)
    with torch.no_grad():
        features = segmentation_features(model, states, 0)[0]
        logits = patch_logits(features.unsqueeze(0), text.unsqueeze(0))[0]
    for index, scale in enumerate(model.config.paa_scales):
        expected = hand_logits(hand_features(model, states, scale, pool_first=True), text)
        torch.testing.assert_close(logits[index], expected, rtol=0, atol=1e-9)
        layer_norm_first = hand_logits(hand_features(model, states, scale, pool_first=False), text)
        if scale == 1:
            torch.testing.assert_close(layer_norm_first, expected, rtol=0, atol=1e-9)
        else:  # the order matters: layer norm does not commute with averaging
            assert (layer_norm_first - expected).abs().max() > 1.0


@pytest.mark.parametrize("leaky_relu", [False, True])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_the_one_projection_form_equals_pooling_normalising_and_projecting_each_scale(leaky_relu, offset):
    """A tiny model's geometry (8 x 8 grid, d 64, e 32), states with and without a large common offset: the model's
    form equals proj(LN(PAA(x))) written out (pool the d-dimensional states, layer norm, project each scale),
    exactly in float64 and within 1e-5 of the largest feature in float32."""
    model = MoECLIPModel(tiny_config(segmentation_leaky_relu=leaky_relu)).eval()
    with torch.no_grad():
        model.vision_model.post_layernorm.weight.normal_(1.0, 0.2, generator=torch.Generator().manual_seed(0))
        model.vision_model.post_layernorm.bias.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(1))
    states = torch.randn(2, 65, 64, generator=torch.Generator().manual_seed(2)) * 3 + offset
    grid = model.config.grid_size

    def written_out(model: MoECLIPModel, states: torch.Tensor, position: int) -> torch.Tensor:
        pooled = patch_aggregation(states[:, 1:].transpose(1, 2).unflatten(-1, (grid, grid)), model.config.paa_scales)
        features = model.segmentation_projections[position](model.vision_model.post_layernorm(pooled.flatten(-2).transpose(-1, -2)))
        features = F.leaky_relu(features) if leaky_relu else features
        return features.transpose(-1, -2).unflatten(-1, (grid, grid))

    with torch.no_grad():
        single = [segmentation_features(model, states, position) for position in range(2)]
        model.double()
        for position in range(2):
            expected = written_out(model, states.double(), position)
            torch.testing.assert_close(segmentation_features(model, states.double(), position), expected, rtol=0, atol=1e-12)
            scale = expected.abs().max().item()
            torch.testing.assert_close(single[position].double(), expected, rtol=0, atol=1e-5 * scale)


def test_the_forward_turns_the_post_moe_states_into_the_logits_of_their_features(tiny):
    model, processor = tiny
    inputs = processor(images=images(2), class_names="bottle", return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
        states = feature_states(model, inputs["pixel_values"])
        expected = torch.stack(
            [patch_logits(segmentation_features(model, states[:, index], index), out.text_embeds) for index in range(states.shape[1])],
            dim=1,
        )
    torch.testing.assert_close(out.patch_logits, expected, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------- released-code deviations


def test_the_image_score_is_a_cosine_in_paper_mode_and_a_dot_product_in_released_mode():
    inputs = tiny_processor()(images=images(2), class_names="bottle", return_tensors="pt")
    outputs = {}
    for renormalize in (True, False):
        torch.manual_seed(0)
        model = randomize_moe(MoECLIPModel(tiny_config(renormalize_image_embedding=renormalize)))
        with torch.no_grad():
            outputs[renormalize] = out = model(**inputs)
            states = feature_states(model, inputs["pixel_values"])
            mean_of_units = model.image_head(model.vision_model.post_layernorm(states[:, -1, 1:]))
        expected = F.normalize(mean_of_units, dim=-1) if renormalize else mean_of_units
        torch.testing.assert_close(out.image_embeds, expected)
        torch.testing.assert_close(out.image_logits, torch.einsum("be,bce->bc", expected, out.text_embeds))
    assert torch.allclose(outputs[True].image_embeds.norm(dim=-1), torch.ones(2))
    assert (outputs[False].image_embeds.norm(dim=-1) < 0.999).all()
    torch.testing.assert_close(outputs[True].patch_logits, outputs[False].patch_logits)


def test_the_trainable_text_projection_replaces_clips_projection_on_the_eot_state():
    model = MoECLIPModel(tiny_config(trainable_text_projection=True)).eval()
    text = model.config.text_config
    assert model.text_projection.weight.shape == (model.config.projection_dim, text.hidden_size)
    prompts = tiny_processor().tokenize_prompts(["bottle"])
    ids, mask = prompts["prompt_input_ids"][0], prompts["prompt_attention_mask"][0]
    with torch.no_grad():
        hidden = model.text_model.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
        end_of_text = (ids == text.eos_token_id).int().argmax(dim=-1)
        eot_states = model.text_model.text_model.final_layer_norm(hidden)[torch.arange(len(ids)), end_of_text]
        sentences = F.normalize(F.leaky_relu(eot_states @ model.text_projection.weight.T), dim=-1)
        expected = F.normalize(torch.stack([sentences[:6].mean(0), sentences[6:].mean(0)]), dim=-1)
        torch.testing.assert_close(model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"])[0], expected)
        model.text_model.text_projection.weight.zero_()  # CLIP's own projection plays no part
        model.clear_prompt_cache()
        torch.testing.assert_close(model.encode_prompts(prompts["prompt_input_ids"], prompts["prompt_attention_mask"])[0], expected)


def test_the_released_class_descriptions_are_the_released_strings_verbatim():
    processor = tiny_processor()
    long_01 = ("Bright concentric rings in neon yellow and blue tones against a dark blue background, resembling a "
               "stylized wave or energy field radiating outward.")
    for dataset, name, released in (("mvtec", "capsule", "black asd orange capsule"), ("btad", "01", long_01)):
        assert describe(name, dataset, released=True) == released != describe(name, dataset)
        assert class_wording(name, describe(name, dataset), "released") == released
        ids = processor(class_names=[name], dataset=dataset, class_descriptions="released")["prompt_input_ids"]
        assert torch.equal(ids, processor.tokenize_descriptions([released])["prompt_input_ids"])
    assert class_wording("capsule", "my own capsule words", "released") == "my own capsule words"
    changed = {(entry.name, name) for entry in BENCHMARKS.values() for name in entry.descriptions
               if entry.describe(name, released=True) != entry.describe(name)}
    assert changed == {("mvtec", "capsule"), ("btad", "01")}
    with pytest.raises(ValueError, match="class_descriptions"):
        processor(class_names=["capsule"], class_descriptions="verbatim")


def test_compatibility_released_sets_every_deviation_and_the_towers_activation():
    paper, released = tiny_config(), tiny_config(compatibility="released")
    for name, (paper_value, released_value) in COMPATIBILITY_FIELDS.items():
        assert getattr(paper, name) == paper_value and getattr(released, name) == released_value, name
    assert (paper.vision_config.hidden_act, paper.text_config.hidden_act) == ("quick_gelu", "quick_gelu")
    assert (released.vision_config.hidden_act, released.text_config.hidden_act) == ("gelu", "gelu")
    assert tiny_config(trainable_text_projection=True, etf_loss_weight=0.0).compatibility == "paper"  # fields stay free


@pytest.mark.parametrize("name", sorted(COMPATIBILITY_FIELDS))
def test_compatibility_released_refuses_a_field_set_to_the_papers_value(name):
    with pytest.raises(ValueError, match=f"compatibility='released'.*{name}"):
        tiny_config(compatibility="released", **{name: COMPATIBILITY_FIELDS[name][0]})


def test_a_released_model_keeps_its_mode_through_save_and_load(tmp_path):
    model = randomize_moe(MoECLIPModel(tiny_config(compatibility="released")))
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["compatibility"] == "released" and saved["vision_config"]["hidden_act"] == "gelu"
    reloaded = MoECLIPModel.from_pretrained(tmp_path).eval()
    for name, (_, released_value) in COMPATIBILITY_FIELDS.items():
        assert getattr(reloaded.config, name) == released_value, name
    assert isinstance(reloaded.vision_model.encoder.layers[0].mlp.activation_fn, type(model.vision_model.encoder.layers[0].mlp.activation_fn))
    inputs = tiny_processor()(images=images(1), class_names="bottle", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).patch_logits, model(**inputs).patch_logits, rtol=0, atol=0)


def test_validation_at_save_catches_a_field_changed_after_construction(tmp_path):
    config = tiny_config(compatibility="released")
    config.trainable_text_projection = False
    with pytest.raises(StrictDataclassClassValidationError, match="trainable_text_projection"):
        config.save_pretrained(tmp_path)
    config = tiny_config(compatibility="released")
    config.vision_config.hidden_act = "quick_gelu"
    with pytest.raises(StrictDataclassClassValidationError, match="exact GELU"):
        config.validate()


def test_evaluation_compatibility_switches_only_the_evaluation_fields():
    config = tiny_config()
    config.apply_evaluation_compatibility("released")
    assert (config.compatibility, config.trainable_text_projection, config.color_jitter) == ("paper", False, True)
    assert config.renormalize_image_embedding is False and config.class_descriptions == "released"
    assert config.protocol_normalization == "outside_unit_range"
    released = tiny_config(compatibility="released")
    released.apply_evaluation_compatibility("paper")
    assert (released.compatibility, released.trainable_text_projection, released.vision_config.hidden_act) == ("paper", True, "gelu")
    assert released.renormalize_image_embedding is True and released.class_descriptions == "paper"


def test_save_and_load_restore_identical_outputs_and_fofs_matrices(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    saved["moe_config"]["fofs_seed"] = 1234
    config_file.write_text(json.dumps(saved))
    reloaded = MoECLIPModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.moe_config.fofs_seed == 1234
    trainable = {name for name, p in reloaded.named_parameters() if p.requires_grad}
    assert trainable == {name for name, p in model.named_parameters() if p.requires_grad}
    for before, after in zip(model.moe_layers(), reloaded.moe_layers()):
        assert torch.equal(before.moe_fofs_A["default"], after.moe_fofs_A["default"])
    reprocessor = MoECLIPProcessor.from_pretrained(tmp_path)
    inputs = processor(images=images(2), class_names=["bottle", "wood"], return_tensors="pt")
    reinputs = reprocessor(images=images(2), class_names=["bottle", "wood"], return_tensors="pt")
    for key in inputs:
        assert torch.equal(inputs[key], reinputs[key])
    with torch.no_grad():
        first, second = model(**inputs), reloaded(**reinputs)
    for name in ("anomaly_map", "anomaly_score", "patch_logits", "image_logits"):
        assert torch.equal(first[name], second[name]), name


def test_the_config_round_trips_and_the_auto_classes_know_moeclip(tiny, tmp_path):
    model, _ = tiny
    model.config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    without_origin = lambda config: {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert isinstance(loaded, MoECLIPConfig) and without_origin(loaded) == without_origin(model.config)
    model.save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), MoECLIPModel)


def test_one_optimiser_step_changes_no_clip_weight():
    model = MoECLIPModel(tiny_config()).train()
    processor = tiny_processor()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(**processor(images=images(2), class_names="bottle", return_tensors="pt"))
    (out.anomaly_map.mean() + out.image_logits.sum() + out.etf_loss + out.balance_loss).backward()
    optimiser.step()
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed
    assert not any(name.startswith("text_model.") for name in changed)
    vision_changed = [name for name in changed if name.startswith("vision_model.")]
    assert vision_changed and all(".moe_router." in name or ".moe_lora_B." in name for name in vision_changed)


def test_forward_returns_the_loss_with_masks_and_labels():
    model = MoECLIPModel(tiny_config()).train()
    inputs = tiny_processor()(images=images(2), class_names="bottle", return_tensors="pt")
    masks = torch.zeros(2, 1, 64, 64)
    masks[1, :, 10:30, 10:30] = 1
    out = model(**inputs, masks=masks, labels=torch.tensor([0, 1]))
    expected = out.segmentation_loss + out.classification_loss + 0.01 * out.etf_loss + 0.01 * out.balance_loss
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.segmentation_projections[0].weight.grad is not None


def test_routing_is_returned_on_request(tiny):
    model, processor = tiny
    with torch.no_grad():
        out = model(**processor(images=images(1), class_names="bottle", return_tensors="pt"), return_routing=True)
    tokens = model.config.grid_size**2 + 1
    assert len(out.router_probs) == len(model.config.moe_config.layers)
    assert out.router_probs[0].shape == (1, tokens, 4) and out.selected_experts[0].shape == (1, tokens, 2)
    torch.testing.assert_close(out.routing_weights[0].sum(-1), torch.ones(1, tokens))


@pytest.mark.parametrize(
    "pixel_values, message",
    [
        (torch.zeros(1, 3, 32, 32), "shape"),
        (torch.zeros(3, 64, 64), "shape"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.long), "floating"),
    ],
)
def test_bad_pixel_values_raise_clear_errors(tiny, pixel_values, message):
    model, _ = tiny
    with pytest.raises(ValueError, match=message):
        model(pixel_values=pixel_values, text_embeds=torch.zeros(pixel_values.shape[0], 2, 32))


def test_missing_prompts_raise_a_clear_error(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="prompt_input_ids"):
        model(pixel_values=torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"feature_layers": [2, 9]}, "feature_layers"),
        ({"moe_config": {"layers": [5]}}, "moe_config.layers"),
        ({"moe_config": {"top_k": 5}}, "top_k"),
        ({"paa_scales": [1, 2]}, "paa_scales"),
        ({"image_size": 60}, "patch size"),
        ({"domain": "space"}, "domain"),
    ],
)
def test_invalid_configurations_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def test_from_clip_builds_a_model_from_a_saved_clip_and_resizes_position_embeddings_once(tmp_path):
    reference = tiny_config()
    clip_config = CLIPConfig(
        vision_config={**reference.vision_config.to_dict(), "image_size": 48},
        text_config=reference.text_config.to_dict(),
        projection_dim=reference.projection_dim,
    )
    torch.manual_seed(0)
    clip = CLIPModel(clip_config).eval()
    clip.save_pretrained(tmp_path)
    model = MoECLIPModel.from_clip(str(tmp_path), image_size=64, feature_layers=[2, 4], moe_config={"layers": [2, 4], "r": 4})
    assert model.config.grid_size == 8
    positions = model.vision_model.embeddings.position_embedding.weight
    expected = resize_position_embeddings(clip.vision_model.embeddings.position_embedding.weight, 8)
    assert positions.shape == (65, 64)
    torch.testing.assert_close(positions, expected)
    torch.testing.assert_close(positions[0], clip.vision_model.embeddings.position_embedding.weight[0])
    wrapped = model.vision_model.encoder.layers[1].base_layer.mlp.fc1.weight
    torch.testing.assert_close(wrapped, clip.vision_model.encoder.layers[1].mlp.fc1.weight)
    torch.testing.assert_close(model.text_model.text_projection.weight, clip.text_projection.weight)
    processor = tiny_processor(64)
    with torch.no_grad():
        out = model.eval()(**processor(images=images(1), class_names="bottle", return_tensors="pt"))
    assert out.anomaly_map.shape == (1, 64, 64)


def test_position_embedding_resize_is_bicubic_antialiased_and_keeps_cls():
    weight = torch.randn(1 + 4 * 4, 6)
    resized = resize_position_embeddings(weight, 6)
    grid = weight[1:].reshape(1, 4, 4, 6).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(resized[1:], expected.permute(0, 2, 3, 1).reshape(36, 6))
    assert torch.equal(resized[0], weight[0])


def test_a_config_saved_with_the_older_moe_key_loads_into_moe_config(tmp_path):
    saved = tiny_config().to_dict()
    saved["moe"] = {**saved.pop("moe_config"), "num_experts": 3}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = MoECLIPConfig.from_pretrained(tmp_path)
    assert isinstance(config.moe_config, MoELoraConfig) and config.moe_config.num_experts == 3
    assert "moe" not in config.to_dict() and config.to_dict()["moe_config"]["num_experts"] == 3
    with pytest.raises(ValueError, match="not both"):
        tiny_config(moe={"r": 4}, moe_config={"r": 4})


def test_patch_features_and_forward_report_the_same_routing(tiny):
    model, processor = tiny
    inputs = processor(images=images(2), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        features = model.get_patch_features(inputs["pixel_values"], layers=model.config.moe_config.layers, return_routing=True)
        out = model(**inputs, return_routing=True)
    for features_experts, forward_experts in zip(features.selected_experts, out.selected_experts, strict=True):
        assert torch.equal(features_experts, forward_experts)
    assert len(features.patch_features) == len(model.config.moe_config.layers)
    assert all(states.shape == (2, model.config.grid_size**2, 64) for states in features.patch_features)
    with pytest.raises(ValueError, match="encoder layers"):
        model.get_patch_features(inputs["pixel_values"], layers=[99])


def test_return_dict_false_gives_the_outputs_as_a_tuple(tiny):
    model, processor = tiny
    inputs = processor(images=images(1), class_names=["bottle"], return_tensors="pt")
    with torch.no_grad():
        as_tuple = model(**inputs, return_dict=False)
        as_output = model(**inputs)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], as_output.anomaly_map)


def test_the_tuner_runs_the_models_own_tower_also_in_a_copy(tiny):
    import copy

    model, _ = tiny
    assert model.moe_tuner.model is model.vision_model
    assert not any(name.startswith("moe_tuner") for name, _ in model.named_parameters())  # CLIP's weight names
    twin = copy.deepcopy(model)
    assert twin.moe_tuner.model is twin.vision_model and twin.moe_tuner is not model.moe_tuner
