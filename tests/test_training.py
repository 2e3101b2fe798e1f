"""The training command: arguments, the loop, checkpoints, exact resumption and the errors raised up front.

Everything runs the tiny offline CLIP on a small synthetic benchmark at 64 px, on CPU.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed
from transformers import CLIPConfig, CLIPModel

from moeclip_hf import MoECLIPModel, MoECLIPProcessor
from moeclip_hf.testing import tiny_config, tiny_tokenizer
from moeclip_hf.training import (
    DataArguments,
    ModelArguments,
    TrainingArguments,
    TrainingConfigurationError,
    argument_parser,
    build_model_and_processor,
    parse_args,
    train,
    verify_checkpoint,
)
from moeclip_hf.data import load_benchmark
from moeclip_hf.training.arguments import LEARNING_RATES, arguments_to_dict
from moeclip_hf.training.checkpointing import list_checkpoints
from moeclip_hf.data.transforms import ClipPreprocess
from moeclip_hf.modeling.processing_moeclip import clip_image_processor
from moeclip_hf.training.data import TrainingSamples
from moeclip_hf.training.model import enable_gradient_checkpointing, vision_encoder_layers

#: Two classes of four images: two batches of two per epoch, so short runs cross epoch boundaries.
RESUME_CLASSES = ["marble", "tablet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    """The synthetic benchmark, generated once for the module (4 images per category, 64 px)."""
    return tmp_path_factory.mktemp("synthetic")


def data_args(root: Path, **overrides) -> DataArguments:
    fields = {
        "dataset": "synthetic",
        "data_root": str(root),
        "synthetic_images_per_category": 4,
        "synthetic_image_size": 64,
        **overrides,
    }
    return DataArguments(**fields)


def training_args(output_dir: Path, **overrides) -> TrainingArguments:
    fields = {"output_dir": str(output_dir), "report_to": ["none"], "logging_steps": 1, **overrides}
    return TrainingArguments(**fields)


def trainable_state(model: MoECLIPModel) -> dict[str, torch.Tensor]:
    """The weights that training changes: routers, experts' B, heads (see `MoECLIPModel.freeze_clip`)."""
    model.freeze_clip()
    return {name: weight.detach().clone() for name, weight in model.named_parameters() if weight.requires_grad}


def assert_states_close(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=atol, rtol=0, msg=name)


def crash_on_forward_call(monkeypatch, call: int) -> None:
    """Make the `call`-th training forward raise, like a run killed in the middle of a step."""
    original = MoECLIPModel.forward
    calls = {"count": 0}

    def forward(self, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == call:
            raise KeyboardInterrupt("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MoECLIPModel, "forward", forward)


# ------------------------------------------------------------------------------------------------ arguments


def test_command_line_flags_map_onto_the_dataclasses_and_the_config():
    model, data, training = parse_args(
        [
            "--clip", "tiny", "--no-fofs", "--num-experts", "2", "--top_k", "1", "--moe-layers", "2", "4",
            "--paa-scales", "1", "3", "--image-head", "linear", "--balance-loss-weight", "0",
            "--dataset", "synthetic", "--classes", "marble", "tablet", "--no-augment",
            "--output-dir", "runs/x", "--max-steps", "7", "--lr-milestones", "5", "10", "--adam-beta1", "0.9",
            "--mixed-precision", "bf16", "--gradient-checkpointing", "--report-to", "none",
        ]
    )  # fmt: skip
    assert (model.clip, model.no_fofs, data.classes, data.augment) == ("tiny", True, ["marble", "tablet"], False)
    assert (training.max_steps, training.lr_milestones, training.adam_beta1) == (7, [5, 10], 0.9)
    assert (training.mixed_precision, training.gradient_checkpointing, training.epochs) == ("bf16", True, 20)
    assert model.config_overrides() == {
        "paa_scales": [1, 3],
        "image_head": "linear",
        "balance_loss_weight": 0.0,
        "moe_config": {"num_experts": 2, "top_k": 1, "layers": [2, 4], "use_fofs": False},
    }
    built, _ = build_model_and_processor(model)
    assert built.config.moe_config.use_fofs is False and built.config.moe_config.r == tiny_config().moe_config.r
    assert built.config.paa_scales == [1, 3] and built.config.balance_loss_weight == 0.0


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_single_argument_file_is_parsed(tmp_path, suffix):
    values = {"clip": "tiny", "dataset": "synthetic", "output_dir": "runs/x", "max_steps": 3, "paa_scales": [1, 3]}
    path = tmp_path / f"run{suffix}"
    yaml = "\n".join(f"{key}: {json.dumps(value)}" for key, value in values.items())
    path.write_text(json.dumps(values) if suffix == ".json" else yaml)
    model, data, training = parse_args([str(path)])
    assert (model.clip, model.paa_scales, data.dataset, training.max_steps) == ("tiny", [1, 3], "synthetic", 3)


def test_the_saved_training_args_are_an_argument_file(tmp_path):
    arguments = (ModelArguments(clip="tiny", top_k=1), data_args(tmp_path), training_args(tmp_path / "run", seed=3))
    path = tmp_path / "training_args.json"
    path.write_text(json.dumps(arguments_to_dict(*arguments)))
    assert parse_args([str(path)]) == arguments


def test_help_explains_every_option():
    text = " ".join(argument_parser().format_help().split())
    flags = ("--max-steps", "--init-from", "--no-fofs", "--resume", "--overwrite", "--gradient-checkpointing")
    assert all(flag in text for flag in flags)
    assert "zero-shot anomaly detection" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--init-from", "ckpt", "--num-experts", "8", "--output-dir", "x", "--dataset", "mvtec"], "--num-experts"),
        (["--init-from", "ckpt", "--compatibility", "released", "--output-dir", "x", "--dataset", "mvtec"], "--compatibility"),
        (["--dataset", "visa", "--output-dir", "x"], "--data-root"),
        (["--dataset", "imagenet", "--output-dir", "x"], "unknown"),
        (["--dataset", "synthetic", "--output-dir", "x", "--resume", "--overwrite"], "one of them"),
        (["--dataset", "synthetic", "--output-dir", "x", "--lr-milestones", "10", "5"], "increasing"),
    ],
)
def test_invalid_arguments_are_refused_by_name(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_args(argv)


# --------------------------------------------------------------------------------------------- up-front errors


def test_a_root_without_images_fails_before_any_work(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    output = tmp_path / "run"
    with pytest.raises(TrainingConfigurationError, match="no MVTec-AD \\(mvtec\\) layout found under"):
        train(ModelArguments(clip="tiny"), DataArguments(dataset="mvtec", data_root=str(empty)), training_args(output))
    assert not output.exists()


def test_a_class_list_that_empties_the_dataset_fails_before_any_work(tmp_path, synthetic_root):
    output = tmp_path / "run"
    with pytest.raises(TrainingConfigurationError, match="unknown mvtec class"):
        train(ModelArguments(clip="tiny"), data_args(synthetic_root, classes=["bottle"]), training_args(output))
    assert not output.exists()


def test_an_output_folder_of_another_run_needs_resume_or_overwrite(tmp_path, synthetic_root):
    output = tmp_path / "run"
    output.mkdir()
    other = training_args(output, max_steps=1, seed=1)
    other = arguments_to_dict(ModelArguments(clip="tiny"), data_args(synthetic_root), other)
    (output / "training_args.json").write_text(json.dumps(other))
    with pytest.raises(TrainingConfigurationError, match="differs in seed"):
        train(ModelArguments(clip="tiny"), data_args(synthetic_root), training_args(output, max_steps=1))
    assert sorted(path.name for path in output.iterdir()) == ["training_args.json"]

    train(ModelArguments(clip="tiny"), data_args(synthetic_root), training_args(output, max_steps=1, overwrite=True))
    assert json.loads((output / "training_args.json").read_text())["seed"] == 42
    with pytest.raises(TrainingConfigurationError, match="already holds checkpoints"):
        train(ModelArguments(clip="tiny"), data_args(synthetic_root), training_args(output, max_steps=1))


# ------------------------------------------------------------------------------------------------- training


def test_training_lowers_the_loss_on_a_fixed_batch_and_changes_only_trainable_weights(tmp_path, synthetic_root):
    model_args = ModelArguments(clip="tiny")
    arguments = (
        model_args,
        data_args(synthetic_root, classes=["marble"], augment=False),
        training_args(tmp_path, batch_size=4, max_steps=8, learning_rate=1e-3, save_steps=2, save_total_limit=2),
    )
    result = train(*arguments)
    kept = [path.name for path in list_checkpoints(tmp_path / "checkpoints")]
    assert kept == ["step-00000006", "step-00000008"]

    losses = [entry["loss"] for entry in result.loss_history]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    set_seed(42)
    initial, _ = build_model_and_processor(model_args)
    trained = MoECLIPModel.from_pretrained(result.model_path)
    trainable = {name for name, parameter in initial.named_parameters() if parameter.requires_grad}
    for name, before in initial.state_dict().items():
        changed = not torch.equal(before, trained.state_dict()[name])
        assert changed == (name in trainable), name
    assert any(".moe_fofs_A." in name for name in initial.state_dict())
    assert_states_close(trainable_state(trained), trainable_state(result.model), atol=0)
    assert isinstance(MoECLIPProcessor.from_pretrained(result.model_path), MoECLIPProcessor)


def test_a_trainable_text_projection_trains(tmp_path, synthetic_root):
    model_args = ModelArguments(clip="tiny", trainable_text_projection=True)
    result = train(model_args, data_args(synthetic_root, classes=["marble"]), training_args(tmp_path, max_steps=2))
    set_seed(42)
    initial, _ = build_model_and_processor(model_args)
    assert not torch.equal(initial.text_projection.weight, result.model.text_projection.weight)
    assert result.loss_history[0]["lr"] == LEARNING_RATES["paper"] == 5e-4


def test_compatibility_released_trains_as_the_released_code_runs(tmp_path, synthetic_root, monkeypatch):
    modes = []
    forward = MoECLIPModel.forward
    monkeypatch.setattr(MoECLIPModel, "forward", lambda self, *args, **kwargs: modes.append(self.training) or forward(self, *args, **kwargs))
    model_args = ModelArguments(clip="tiny", compatibility="released")
    result = train(model_args, data_args(synthetic_root, classes=["marble"]), training_args(tmp_path, max_steps=2))
    config = result.model.config
    assert config.compatibility == "released" and config.vision_config.hidden_act == "gelu"
    assert modes and not any(modes)  # evaluation mode throughout: no ETF or balance loss, no LoRA dropout
    assert all(entry["etf_loss"] == entry["balance_loss"] == 0.0 for entry in result.loss_history)
    assert result.loss_history[0]["lr"] == LEARNING_RATES["released"] == 5e-5
    set_seed(42)
    initial, _ = build_model_and_processor(model_args)
    assert not torch.equal(initial.text_projection.weight, result.model.text_projection.weight)
    assert not torch.equal(initial.moe_layers()[0].moe_lora_B["default"], result.model.moe_layers()[0].moe_lora_B["default"])


def test_released_training_augments_the_normalised_image_without_colour_jitter(synthetic_root):
    rows = load_benchmark("mvtec", synthetic_root / "train", classes=["marble"])
    image_processor = clip_image_processor(64)
    plain = TrainingSamples(rows, ClipPreprocess(image_processor), augment=False, seed=0)
    after_normalization = ClipPreprocess(image_processor, augment_after_normalization=True)
    released = TrainingSamples(rows, after_normalization, augment=True, seed=0, color_jitter=False)
    moved = 0
    for index in range(len(rows)):
        original, augmented = plain[(0, index)]["pixel_values"], released[(0, index)]["pixel_values"]
        # nearest resampling copies pixels, and the fill (0 after normalisation) is the mean colour
        assert set(augmented.unique().tolist()) <= set(original.unique().tolist()) | {0.0}
        moved += not torch.equal(augmented, original)
    assert moved


def test_a_transformers_clip_folder_trains_with_accumulation_in_bf16(tmp_path, synthetic_root):
    tiny = tiny_config()
    clip_dir = tmp_path / "clip"
    clip_config = CLIPConfig(text_config=tiny.text_config.to_dict(), vision_config=tiny.vision_config.to_dict())
    CLIPModel(clip_config).save_pretrained(clip_dir)
    tiny_tokenizer().save_pretrained(clip_dir)
    model_args = ModelArguments(clip=str(clip_dir), image_size=64, moe_layers=[2, 4], feature_layers=[2, 4])
    arguments = training_args(tmp_path / "run", max_steps=1, gradient_accumulation_steps=2, mixed_precision="bf16")
    result = train(model_args, data_args(synthetic_root, classes=["marble"]), arguments)
    assert result.global_step == 1 and result.model.config.image_size == 64


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    set_seed(0)
    plain = MoECLIPModel(tiny_config()).train()
    checkpointed = copy.deepcopy(plain)
    enable_gradient_checkpointing(checkpointed)
    recomputed = []
    for layer in vision_encoder_layers(checkpointed):
        original = layer._gradient_checkpointing_func

        def counting(*args, _original=original, **kwargs):
            recomputed.append(1)
            return _original(*args, **kwargs)

        layer._gradient_checkpointing_func = counting
    inputs = {
        "pixel_values": torch.randn(2, 3, 64, 64),
        "text_embeds": torch.nn.functional.normalize(torch.randn(2, 2, plain.config.projection_dim), dim=-1),
        "masks": (torch.rand(2, 1, 64, 64) > 0.8).float(),
        "labels": torch.tensor([0, 1]),
    }
    losses, gradients = [], []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        loss = model(**inputs).loss
        loss.backward()
        losses.append(loss.detach())
        gradients.append({name: p.grad for name, p in model.named_parameters() if p.requires_grad})
    assert len(recomputed) == plain.config.vision_config.num_hidden_layers
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=0)
    assert all(gradient is not None for gradient in gradients[0].values())
    assert_states_close(gradients[0], gradients[1])


# ------------------------------------------------------------------------------------------ checkpoints, resume


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_root):
    """Seven steps over two epochs and a half, with augmentation and checkpoints every two steps."""
    output = tmp_path_factory.mktemp("uninterrupted")
    return train(
        ModelArguments(clip="tiny"),
        data_args(synthetic_root, classes=RESUME_CLASSES),
        training_args(output, max_steps=7, save_steps=2),
    )


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, synthetic_root, uninterrupted, monkeypatch):
    arguments = (ModelArguments(clip="tiny"), data_args(synthetic_root, classes=RESUME_CLASSES))
    with monkeypatch.context() as patch:
        crash_on_forward_call(patch, call=5)
        with pytest.raises(KeyboardInterrupt):
            train(*arguments, training_args(tmp_path, max_steps=7, save_steps=3))
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["step-00000003"]  # mid-epoch

    resumed = train(*arguments, training_args(tmp_path, max_steps=7, save_steps=3, resume=True))
    assert resumed.global_step == 7
    assert_states_close(trainable_state(resumed.model), trainable_state(uninterrupted.model))
    assert len(resumed.loss_history) == len(uninterrupted.loss_history)
    for entry, expected in zip(resumed.loss_history, uninterrupted.loss_history):
        assert entry == pytest.approx(expected, abs=1e-6)
    assert verify_checkpoint(resumed.checkpoint_path) is None


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, synthetic_root, uninterrupted, caplog):
    arguments = (ModelArguments(clip="tiny"), data_args(synthetic_root, classes=RESUME_CLASSES))
    train(*arguments, training_args(tmp_path, max_steps=4, save_steps=2))
    weights = tmp_path / "checkpoints" / "step-00000004" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    half_written = tmp_path / "checkpoints" / ".tmp-step-00000006"
    half_written.mkdir()
    (half_written / "optimizer.bin").write_bytes(b"partial")

    with caplog.at_level(logging.WARNING):
        resumed = train(*arguments, training_args(tmp_path, max_steps=7, save_steps=2, resume=True))
    assert "step-00000004 is unusable (model/model.safetensors has 100 bytes" in caplog.text
    assert "Resuming" in caplog.text and "max_steps" in caplog.text
    assert not half_written.exists()
    assert_states_close(trainable_state(resumed.model), trainable_state(uninterrupted.model))


def test_init_from_a_checkpoint_trains_only_the_trainable_weights(tmp_path, synthetic_root, uninterrupted):
    model_args = ModelArguments(init_from=str(uninterrupted.model_path), etf_loss_weight=0.0)
    result = train(model_args, data_args(synthetic_root, classes=["marble"]), training_args(tmp_path, max_steps=1))
    start = MoECLIPModel.from_pretrained(uninterrupted.model_path)
    trainable = trainable_state(start).keys()
    assert result.model.config.etf_loss_weight == 0.0
    for name, before in start.state_dict().items():
        assert torch.equal(before, result.model.state_dict()[name]) != (name in trainable), name
