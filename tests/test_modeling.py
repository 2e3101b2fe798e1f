"""MoECLIPConfig / MoECLIPModel / MoECLIPProcessor: the full forward, its outputs, save and load."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoConfig, AutoModel, CLIPConfig, CLIPModel

from moeclip_hf import MoECLIPConfig, MoECLIPModel, MoECLIPProcessor, MoELoraConfig
from moeclip_hf.modeling.heads import patch_aggregation
from moeclip_hf.modeling.maps import fuse_image_score, image_anomaly_score, probability_anomaly_map
from moeclip_hf.modeling.clip_weights import resize_position_embeddings
from moeclip_hf.modeling.moe_lora import MoELoraLayer
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
    handle = model.text_model.register_forward_hook(lambda *args: calls.append(1))
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


def test_projecting_before_pooling_equals_pooling_before_projecting(tiny):
    model, _ = tiny
    patches = torch.randn(2, model.config.grid_size**2, 64)
    for position, projection in enumerate(model.segmentation_projections):
        fast = model._patch_grids(patches, position)
        pooled = patch_aggregation(model._to_grid(patches, model.config.grid_size), model.config.paa_scales)
        reference = torch.einsum("bsdhw,ed->bsehw", pooled, projection.weight)
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


def test_the_leaky_relu_variant_pools_before_projecting():
    model = MoECLIPModel(tiny_config(segmentation_leaky_relu=True))
    patches = torch.randn(1, model.config.grid_size**2, 64)
    pooled = patch_aggregation(model._to_grid(patches, model.config.grid_size), model.config.paa_scales)
    weight = model.segmentation_projections[1].weight
    expected = F.leaky_relu(torch.einsum("bsdhw,ed->bshwe", pooled, weight)).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(model._patch_grids(patches, 1), expected)


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
