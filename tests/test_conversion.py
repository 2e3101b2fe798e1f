"""Importing the files a user of the released MoECLIP code holds, and exporting back to them.

The end-to-end checks generate the released user's two files (0.9 GB, `released_files.py`, deleted after the
module), convert them, and require the converted model, run in its released compatibility mode on the fixture
images, to reproduce every tensor the released code computed (`fixtures/released_checkpoint/README.md`).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from moeclip_hf import MoECLIPModel, MoECLIPProcessor
from moeclip_hf.cli import main
from moeclip_hf.conversion import tokenizer as tokenizer_module
from moeclip_hf.conversion.open_clip import open_clip_to_transformers
from moeclip_hf.conversion.released import (
    convert_released,
    export_released,
    is_fofs,
    read_released_checkpoint,
    state_dict_to_released,
)
from moeclip_hf.conversion.tokenizer import clip_tokenizer_from_bpe, load_clip_tokenizer
from moeclip_hf.hub import render_model_card
from moeclip_hf.modeling.maps import image_anomaly_score, protocol_anomaly_map
from moeclip_hf.testing import randomize_moe, tiny_config
from released_files import adapter_value, clip_value, write_released_files

FIXTURES = Path(__file__).parent / "fixtures"
RELEASED = FIXTURES / "released_checkpoint"
BPE = FIXTURES / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"
IMAGES = {224: ("scratch.png", "plain.png"), 518: ("scratch.png",)}
EXPECTED_FILES = {224: ("expected_224.safetensors",), 518: ("expected_518.safetensors", "expected_518_map.safetensors")}
MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073))
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711))


# ------------------------------------------------------------------------------------------- the fixture


@pytest.fixture(scope="module")
def released_files(tmp_path_factory):
    """The released user's `ViT-L-14-336px.pt` (float16) and `moe_epoch_1.pth`, generated, deleted afterwards."""
    folder = tmp_path_factory.mktemp("released")
    paths = write_released_files(folder)
    yield paths
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def converted_224(released_files, tmp_path_factory):
    """`moeclip convert-released` at 224 px: a save_pretrained folder (1.7 GB, deleted afterwards)."""
    clip, checkpoint = released_files
    folder = tmp_path_factory.mktemp("converted")
    command = ["convert-released", "--checkpoint", str(checkpoint), "--clip", str(clip), "--output", str(folder),
               "--image-size", "224", "--tokenizer", str(BPE)]
    assert main(command) == 0
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def expected_tensors(size: int) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in EXPECTED_FILES[size]:
        tensors.update(load_file(RELEASED / name))
    pixels = tensors.pop("pixels_uint8")
    tensors["pixel_values"] = pixels.float().div(255).sub(MEAN[:, None, None]).div(STD[:, None, None])
    return tensors


def released_outputs(model: MoECLIPModel, processor: MoECLIPProcessor, size: int) -> dict[str, torch.Tensor]:
    """What the released `test.py` reports, computed by the converted model (class MVTec bottle, industrial)."""
    pictures = [Image.open(RELEASED / name) for name in IMAGES[size]]
    inputs = processor(images=pictures, class_names="bottle", dataset="mvtec", return_tensors="pt",
                       class_descriptions=model.config.class_descriptions)
    with torch.no_grad():
        out = model(**inputs)
    kernel, sigma = model.config.blur_kernel_sizes["industrial"], model.config.blur_sigmas["industrial"]
    return {
        "pixel_values": inputs["pixel_values"],
        "text_embeds": out.text_embeds[0],
        # (B, layers, scales, 2, g, g) -> the released (B, layers x scales, patches, 2), layer-major
        "patch_logits": out.patch_logits.flatten(1, 2).flatten(-2).transpose(-1, -2),
        "det_feature": out.image_embeds,
        "image_score": image_anomaly_score(out.image_logits),
        "test_map_sum_blurred": protocol_anomaly_map(out.patch_logits.flatten(1, 2), size, kernel, sigma),
    }


def assert_reproduces_the_released_code(outputs: dict[str, torch.Tensor], size: int) -> None:
    expected = expected_tensors(size)
    assert set(outputs) == set(expected)
    assert torch.equal(outputs["pixel_values"], expected["pixel_values"])
    for name, tensor in expected.items():
        tolerance = 1e-4 * tensor.abs().max().item()
        torch.testing.assert_close(outputs[name], tensor, rtol=0, atol=tolerance, msg=lambda text, name=name: f"{name}: {text}")


@pytest.fixture(scope="module")
def loaded_224(converted_224):
    """The converted folder loaded as any saved model is."""
    return MoECLIPModel.from_pretrained(converted_224).eval(), MoECLIPProcessor.from_pretrained(converted_224)


def test_a_converted_released_checkpoint_reproduces_the_released_code_at_224_px(loaded_224):
    model, processor = loaded_224
    assert model.config.compatibility == "released" and model.config.vision_config.hidden_act == "gelu"
    assert model.config.image_size == 224 and model.config.moe_config.use_fofs
    assert_reproduces_the_released_code(released_outputs(model, processor, 224), 224)


@pytest.mark.slow
def test_a_converted_released_checkpoint_reproduces_the_released_code_at_518_px(released_files):
    clip, checkpoint = released_files
    model, processor = convert_released(checkpoint, clip, image_size=518, tokenizer=BPE)
    assert_reproduces_the_released_code(released_outputs(model, processor, 518), 518)


def test_convert_then_export_gives_back_the_checkpoints_tensors(released_files, loaded_224, tmp_path):
    _, checkpoint = released_files
    exported = export_released(loaded_224[0], tmp_path / "moe_epoch.pth")
    original_image, original_text = read_released_checkpoint(checkpoint)
    saved = torch.load(exported, weights_only=True)
    exported.unlink()  # 57 MB
    assert set(saved) == {"epoch", "image_adapter", "text_adapter"}
    for original, written in ((original_image, saved["image_adapter"]), (original_text, saved["text_adapter"])):
        assert set(written) == set(original)
        for key, tensor in original.items():
            assert torch.equal(written[key], tensor), key


# ------------------------------------------------------------------------------------- tiny CLIP files


def tiny_open_clip_state(vision_width: int = 64, text_width: int = 64, layers: int = 2, grid: int = 3,
                         patch: int = 8, embed: int = 16, vocab: int = 49408) -> dict[str, torch.Tensor]:
    """A small ViT CLIP state dict in OpenAI's layout, drawn with the fixture's weight rules."""
    shapes = {
        "positional_embedding": (77, text_width), "text_projection": (text_width, embed), "logit_scale": (),
        "visual.class_embedding": (vision_width,), "visual.positional_embedding": (grid * grid + 1, vision_width),
        "visual.proj": (vision_width, embed), "visual.conv1.weight": (vision_width, 3, patch, patch),
        "visual.ln_pre.weight": (vision_width,), "visual.ln_pre.bias": (vision_width,),
        "visual.ln_post.weight": (vision_width,), "visual.ln_post.bias": (vision_width,),
        "token_embedding.weight": (vocab, text_width), "ln_final.weight": (text_width,), "ln_final.bias": (text_width,),
    }
    for prefix, width in (("visual.transformer", vision_width), ("transformer", text_width)):
        for block in range(layers):
            base = f"{prefix}.resblocks.{block}."
            shapes.update({
                base + "ln_1.weight": (width,), base + "ln_1.bias": (width,),
                base + "attn.in_proj_weight": (3 * width, width), base + "attn.in_proj_bias": (3 * width,),
                base + "attn.out_proj.weight": (width, width), base + "attn.out_proj.bias": (width,),
                base + "ln_2.weight": (width,), base + "ln_2.bias": (width,),
                base + "mlp.c_fc.weight": (4 * width, width), base + "mlp.c_fc.bias": (4 * width,),
                base + "mlp.c_proj.weight": (width, 4 * width), base + "mlp.c_proj.bias": (width,),
            })
    generator = torch.Generator().manual_seed(0)
    return {key: clip_value(key, torch.randn(shape, generator=generator)) for key, shape in shapes.items()}


def tiny_released_adapters(hidden: int = 64, embed: int = 16, text_width: int = 64, layers: int = 2,
                           experts: int = 4, rank: int = 2) -> tuple[dict, dict]:
    """A released checkpoint's adapters for the tiny CLIP, drawn with the fixture's rules."""
    shapes = {}
    for index in range(layers):
        shapes[f"seg_proj.{index}.fc.weight"] = (embed, hidden)
    shapes.update({"det_proj.ln.weight": (hidden,), "det_proj.ln.bias": (hidden,),
                   "det_proj.adapter.0.weight": (hidden, 1, 3), "det_proj.adapter.2.weight": (embed, hidden, 1)})
    for index in range(layers):
        shapes[f"moe_adapters.{index}.gate.weight"] = (experts, hidden)
        for expert in range(experts):
            shapes[f"moe_adapters.{index}.experts.{expert}.lora_A.weight"] = (rank, hidden)
            shapes[f"moe_adapters.{index}.experts.{expert}.lora_B.weight"] = (hidden, rank)
    generator = torch.Generator().manual_seed(1)
    image = {key: adapter_value(key, torch.randn(shape, generator=generator), experts) for key, shape in shapes.items()}
    text = {"0.fc.0.weight": torch.randn(embed, text_width, generator=generator) * 0.1}
    return image, text


def save_checkpoint(path: Path, image_adapter: dict, text_adapter: dict) -> Path:
    torch.save({"epoch": 3, "optimizer_state_dict": {"state": {}, "param_groups": []}, "image_adapter": image_adapter,
                "text_adapter": text_adapter}, path)
    return path


class _Nested(torch.nn.Module):
    """Holds tensors under dotted names, as OpenAI's TorchScript CLIP does (buffers only: nothing trains here)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        children: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            head, _, rest = key.partition(".")
            if rest:
                children.setdefault(head, {})[rest] = tensor
            else:
                self.register_buffer(head, tensor)
        for name, items in children.items():
            self.add_module(name, _Nested(items))

    def forward(self) -> int:
        return 0


def save_torchscript(state: dict[str, torch.Tensor], path: Path) -> Path:
    """`state` as a TorchScript archive with OpenAI's extra entries, like OpenAI's CLIP files."""
    extras = {"input_resolution": torch.tensor(24), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
    torch.jit.save(torch.jit.script(_Nested({**state, **extras})), str(path))
    return path


def test_from_open_clip_reads_a_state_dict_a_safetensors_file_and_a_torchscript_archive_alike(tmp_path):
    state = tiny_open_clip_state()
    torch.save(state, tmp_path / "clip.pt")
    save_file({key: value.contiguous() for key, value in state.items()}, tmp_path / "clip.safetensors")
    save_torchscript(state, tmp_path / "clip_jit.pt")
    models = [MoECLIPModel.from_open_clip(tmp_path / name, image_size=40, feature_layers=[1, 2], moe_config={"layers": [1, 2], "r": 2})
              for name in ("clip.pt", "clip.safetensors", "clip_jit.pt")]
    towers = lambda model: {key: value for key, value in model.state_dict().items() if key.startswith(("vision_model.", "text_model."))}  # noqa: E731
    reference = towers(models[0])
    for model in models[1:]:
        assert all(torch.equal(reference[key], value) for key, value in towers(model).items())
    model = models[0]
    vision, text = model.config.vision_config, model.config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.patch_size, vision.num_attention_heads) == (64, 2, 8, 1)
    assert (text.hidden_size, text.vocab_size, text.eos_token_id, model.config.projection_dim) == (64, 49408, 49407, 16)
    assert vision.hidden_act == text.hidden_act == "quick_gelu"
    attention = model.vision_model.encoder.layers[0].base_layer.self_attn
    query, key, value = state["visual.transformer.resblocks.0.attn.in_proj_weight"].chunk(3)
    for projection, part in ((attention.q_proj, query), (attention.k_proj, key), (attention.v_proj, value)):
        assert torch.equal(projection.weight, part)
    assert torch.equal(model.text_model.text_projection.weight, state["text_projection"].T)
    assert model.vision_model.embeddings.position_embedding.weight.shape == (1 + 5 * 5, 64)  # 3 x 3 resized to 5 x 5


def test_from_open_clip_takes_the_activation_the_released_code_runs(tmp_path):
    path = tmp_path / "clip.pt"
    torch.save(tiny_open_clip_state(), path)
    common = {"image_size": 40, "feature_layers": [1, 2], "moe_config": {"layers": [1, 2], "r": 2}}
    released = MoECLIPModel.from_open_clip(path, compatibility="released", **common)
    assert released.config.vision_config.hidden_act == released.config.text_config.hidden_act == "gelu"
    assert MoECLIPModel.from_open_clip(path, hidden_act="gelu", **common).config.compatibility == "paper"
    with pytest.raises(ValueError, match="hidden_act='quick_gelu' contradicts"):
        MoECLIPModel.from_open_clip(path, hidden_act="quick_gelu", compatibility="released", **common)


class _Trap:
    """Unpickling this object would create `path`: the payload of a hostile pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_files_that_are_not_plain_weights_are_refused_naming_the_file(tmp_path):
    trap = tmp_path / "executed"
    hostile = tmp_path / "moe_epoch_1.pth"
    torch.save({"epoch": 1, "image_adapter": _Trap(trap), "text_adapter": {}}, hostile)
    with pytest.raises(ValueError, match=f"{hostile}.*pickled Python object.*refused, not run"):
        convert_released(hostile, tmp_path / "unused.pt")
    with pytest.raises(ValueError, match="refused, not run"):
        MoECLIPModel.from_open_clip(hostile)
    assert not trap.exists()

    whole = save_checkpoint(tmp_path / "whole.pth", *tiny_released_adapters())
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{truncated} cannot be read as a PyTorch file.*truncated"):
        convert_released(truncated, tmp_path / "unused.pt")

    lightning = tmp_path / "clip.ckpt"
    lightning.write_bytes(b"not read")
    with pytest.raises(ValueError, match=f"{lightning} has the suffix '.ckpt'"):
        MoECLIPModel.from_open_clip(lightning)
    not_a_checkpoint = tmp_path / "state.pth"
    torch.save({"weight": torch.zeros(2)}, not_a_checkpoint)
    with pytest.raises(ValueError, match=f"{not_a_checkpoint} is not a released MoECLIP checkpoint.*'weight'"):
        convert_released(not_a_checkpoint, tmp_path / "unused.pt")


def test_an_open_clip_file_that_is_not_a_square_vit_clip_is_refused_naming_the_file(tmp_path):
    resnet = {"visual.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "visual.attnpool.positional_embedding": torch.zeros(50, 2048),
              **{key: value for key, value in tiny_open_clip_state().items() if not key.startswith("visual.")}}
    path = tmp_path / "RN50.pt"
    torch.save(resnet, path)
    with pytest.raises(ValueError, match=f"{path} is a ResNet CLIP .*needs a ViT CLIP"):
        MoECLIPModel.from_open_clip(path)

    state = tiny_open_clip_state()
    state["visual.positional_embedding"] = torch.zeros(1 + 10, 64)
    torch.save(state, path := tmp_path / "oblong.pt")
    with pytest.raises(ValueError, match=f"{path}: .*10 patch positions, which is not a square grid"):
        MoECLIPModel.from_open_clip(path)

    state = tiny_open_clip_state()
    del state["transformer.resblocks.1.mlp.c_fc.weight"]
    torch.save(state, path := tmp_path / "incomplete.pt")
    with pytest.raises(ValueError, match=f"{path}: .*missing.*encoder.layers.1.mlp.fc1.weight"):
        MoECLIPModel.from_open_clip(path, image_size=40, feature_layers=[1, 2], moe_config={"layers": [1, 2], "r": 2})

    transformers_layout = {"vision_model.embeddings.class_embedding": torch.zeros(4)}
    torch.save(transformers_layout, path := tmp_path / "hf.bin")
    with pytest.raises(ValueError, match=f"{path} holds a transformers CLIPModel state dict.*from_clip"):
        MoECLIPModel.from_open_clip(path)


@pytest.fixture
def tiny_released(tmp_path) -> tuple[Path, Path]:
    """A tiny CLIP file and a released checkpoint of 2 MoE layers x 4 experts of rank 2 for it."""
    clip = tmp_path / "clip.pt"
    torch.save(tiny_open_clip_state(), clip)
    return clip, save_checkpoint(tmp_path / "moe_epoch_3.pth", *tiny_released_adapters())


TINY = {"image_size": 40, "moe_layers": [1, 2], "r": 2, "tokenizer": BPE}


def test_a_checkpoint_of_other_experts_or_rank_is_refused_with_the_option_that_fits(tiny_released, tmp_path):
    clip, _ = tiny_released
    eight_experts = save_checkpoint(tmp_path / "k8.pth", *tiny_released_adapters(experts=8))
    with pytest.raises(ValueError, match=f"{eight_experts} holds 8 experts per MoE layer but .*num_experts=4: pass --num-experts 8"):
        convert_released(eight_experts, clip, **TINY)
    rank_four = save_checkpoint(tmp_path / "r4.pth", *tiny_released_adapters(rank=4))
    with pytest.raises(ValueError, match=f"{rank_four}: .*lora_A.weight has shape \\(4, 64\\), .*r=2: pass --r 4"):
        convert_released(rank_four, clip, **TINY)
    three_layers = save_checkpoint(tmp_path / "l3.pth", *tiny_released_adapters(layers=3))
    with pytest.raises(ValueError, match=f"{three_layers} holds 3 MoE layers .* places 2"):
        convert_released(three_layers, clip, **TINY)
    other_clip = save_checkpoint(tmp_path / "e8.pth", *tiny_released_adapters(embed=8))
    with pytest.raises(ValueError, match=f"{other_clip}: image_adapter\\['seg_proj.0.fc.weight'\\] has shape \\(8, 64\\) .*\\(16, 64\\)"):
        convert_released(other_clip, clip, **TINY)


def test_a_tiny_conversion_maps_every_tensor_and_exports_back(tiny_released, tmp_path):
    clip, checkpoint = tiny_released
    model, processor = convert_released(checkpoint, clip, output=tmp_path / "converted", **TINY)
    image_adapter, text_adapter = read_released_checkpoint(checkpoint)
    layer = model.vision_model.encoder.layers[1]
    assert torch.equal(layer.moe_fofs_A["default"][3], image_adapter["moe_adapters.1.experts.3.lora_A.weight"])
    assert torch.equal(layer.moe_lora_B["default"][2], image_adapter["moe_adapters.1.experts.2.lora_B.weight"])
    assert torch.equal(layer.moe_router["default"].weight, image_adapter["moe_adapters.1.gate.weight"])
    assert torch.equal(model.image_head.depthwise.weight, image_adapter["det_proj.adapter.0.weight"])
    assert torch.equal(model.text_projection.weight, text_adapter["0.fc.0.weight"])
    assert (tmp_path / "converted" / "model.safetensors").is_file() and len(processor.tokenizer) == 49408
    written = tmp_path / "back.pth"
    assert main(["export-released", str(tmp_path / "converted"), "--output", str(written), "--epoch", "3"]) == 0
    saved = torch.load(written, weights_only=True)
    assert saved["epoch"] == 3
    for key, tensor in image_adapter.items():
        assert torch.equal(saved["image_adapter"][key], tensor), key
    assert torch.equal(saved["text_adapter"]["0.fc.0.weight"], text_adapter["0.fc.0.weight"])


def test_a_converted_folder_is_used_like_any_other_model(tiny_released, tmp_path):
    from transformers import pipeline

    clip, checkpoint = tiny_released
    convert_released(checkpoint, clip, output=tmp_path / "converted", **TINY)
    detector = pipeline("zero-shot-anomaly-detection", model=str(tmp_path / "converted"))
    assert detector.model.config.compatibility == "released"
    result = detector(str(RELEASED / "scratch.png"), class_name="capsule", dataset="mvtec")
    assert 0.0 <= result["score"] <= 1.0 and result["anomaly_map"].size == (256, 256)
    card = render_model_card(detector.model.config)
    assert "released-code compatibility mode" in card and "tight frame loss keeps" not in card
    assert "tight frame loss keeps" in render_model_card(tiny_config())
    prompts = detector.preprocess(str(RELEASED / "scratch.png"), class_name="capsule", dataset="mvtec")
    expected = detector.processor.tokenize_descriptions(["black asd orange capsule"])["prompt_input_ids"]
    assert torch.equal(prompts["prompt_input_ids"], expected)


def test_trained_a_matrices_convert_without_fofs(tiny_released, tmp_path):
    clip, _ = tiny_released
    image_adapter, text_adapter = tiny_released_adapters()
    image_adapter["moe_adapters.0.experts.1.lora_A.weight"] = torch.randn(2, 64)  # not zero outside its chunk
    checkpoint = save_checkpoint(tmp_path / "trained_a.pth", image_adapter, text_adapter)
    model, _ = convert_released(checkpoint, clip, **TINY)
    assert not model.config.moe_config.use_fofs
    assert torch.equal(model.vision_model.encoder.layers[0].moe_lora_A["default"][1], image_adapter["moe_adapters.0.experts.1.lora_A.weight"])
    assert is_fofs(torch.stack([image_adapter[f"moe_adapters.1.experts.{n}.lora_A.weight"] for n in range(4)]))


def test_export_refuses_a_model_the_released_code_would_compute_otherwise(tmp_path):
    with pytest.raises(ValueError, match="compatibility is 'paper', not 'released'"):
        export_released(MoECLIPModel(tiny_config()), tmp_path / "x.pth")
    model = randomize_moe(MoECLIPModel(tiny_config(compatibility="released")))
    image_adapter, text_adapter = state_dict_to_released(model)
    assert image_adapter["moe_adapters.1.experts.0.lora_B.weight"].shape == (64, 4)
    assert text_adapter["0.fc.0.weight"].shape == (32, 48)


def test_the_command_line_names_the_file_of_a_failed_conversion(tmp_path, capsys):
    missing = tmp_path / "nowhere.pth"
    assert main(["convert-released", "--checkpoint", str(missing), "--clip", str(missing), "--output", str(tmp_path / "o")]) == 1
    assert f"{missing} does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- tokenizer


def test_clips_tokenizer_is_built_from_its_bpe_file_as_openai_builds_it():
    tokenizer = clip_tokenizer_from_bpe(BPE)
    assert len(tokenizer) == 49408
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [49406, 49407]
    lines = gzip.decompress(BPE.read_bytes()).decode().split("\n")
    first_merge, last_merge = "".join(lines[1].split()), "".join(lines[48894].split())
    assert tokenizer.convert_tokens_to_ids([first_merge, last_merge]) == [512, 512 + 48893]
    ids = tokenizer("a photo of dark bottle.")["input_ids"]
    assert ids[0] == 49406 and ids[-1] == 49407
    assert tokenizer.convert_ids_to_tokens(ids[1:-1]) == ["a</w>", "photo</w>", "of</w>", "dark</w>", "bottle</w>", ".</w>"]


def test_a_bad_bpe_file_and_a_missing_tokenizer_are_explained(tmp_path, monkeypatch):
    bad = tmp_path / "vocab.txt"
    bad.write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match=f"{bad} is not a CLIP BPE file.*lines \\[2\\]"):
        clip_tokenizer_from_bpe(bad)
    monkeypatch.setattr(tokenizer_module, "find_open_clip_bpe", lambda: None)
    with pytest.raises(ValueError, match="pass --tokenizer with CLIP's BPE file"):
        load_clip_tokenizer()  # offline: the Hub default cannot be fetched
    monkeypatch.setattr(tokenizer_module, "find_open_clip_bpe", lambda: BPE)
    assert len(load_clip_tokenizer()) == 49408


def test_the_fixture_files_hold_what_their_readme_says():
    keys = json.loads((RELEASED / "keys.json").read_text())
    assert len(keys["openai_clip_state_dict"]) == 446 and keys["text_adapter"] == [["0.fc.0.weight", [768, 768]]]
    for size, files in EXPECTED_FILES.items():
        assert all((RELEASED / name).stat().st_size < 2_000_000 for name in files)
        assert expected_tensors(size)["pixel_values"].shape == (len(IMAGES[size]), 3, size, size)
    state = tiny_open_clip_state()
    vision, text = open_clip_to_transformers(state, Path("tiny"))
    assert len(vision) == 7 + 2 * 16 and len(text) == 5 + 2 * 16
