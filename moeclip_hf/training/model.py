"""The model a run trains: built fresh around a CLIP backbone (or the tiny one), or loaded from a checkpoint."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.moe_lora import MoELoraLayer
from ..modeling.processing_moeclip import MoECLIPProcessor, clip_image_processor
from ..presets import TINY_IMAGE_SIZE, tiny_config, tiny_processor
from .arguments import TINY_CLIP, ModelArguments

#: Image side of a run from a full CLIP backbone (METHOD.md, "Backbone").
DEFAULT_IMAGE_SIZE = 518


def build_model_and_processor(model_args: ModelArguments) -> tuple[MoECLIPModel, MoECLIPProcessor]:
    """The model to train and its processor: from a MoECLIP checkpoint, the tiny offline CLIP, or any CLIP.

    Call `accelerate.utils.set_seed` first: the heads and MoE layers of a fresh model are drawn at random.
    """
    if model_args.init_from is not None:
        model = MoECLIPModel.from_pretrained(model_args.init_from)  # CLIP frozen, as after __init__
        processor = MoECLIPProcessor.from_pretrained(model_args.init_from)
        for name, value in model_args.loss_weight_overrides().items():
            setattr(model.config, name, value)
        return model, processor
    overrides = model_args.config_overrides()
    if model_args.clip == TINY_CLIP:
        image_size = model_args.image_size or TINY_IMAGE_SIZE
        if "moe_config" in overrides:
            overrides["moe_config"] = {**tiny_config().moe_config.hyperparameters(), **overrides["moe_config"]}
        return MoECLIPModel(tiny_config(image_size=image_size, **overrides)), tiny_processor(image_size)
    image_size = model_args.image_size or DEFAULT_IMAGE_SIZE
    model = MoECLIPModel.from_clip(model_args.clip, image_size=image_size, **overrides)
    processor = MoECLIPProcessor(
        image_processor=clip_image_processor(image_size), tokenizer=AutoTokenizer.from_pretrained(model_args.clip)
    )
    return model, processor


def vision_encoder_layers(model: MoECLIPModel) -> list[torch.nn.Module]:
    """The CLIP encoder layers of the vision tower, the wrapped layer in place of each MoE-LoRA wrapper."""
    layers = model.vision_model.encoder.layers
    return [layer.base_layer if isinstance(layer, MoELoraLayer) else layer for layer in layers]


def enable_gradient_checkpointing(model: MoECLIPModel) -> None:
    """Recompute the frozen CLIP encoder layers in the backward pass instead of keeping their activations.

    transformers' activation checkpointing reaches the CLIP layers wrapped by the MoE too (they are still
    `GradientCheckpointingLayer`s); the MoE mixing itself is cheap and stays outside the recomputation. The
    non-reentrant variant is used because the first layers' inputs do not require gradients.
    """
    model.activation_checkpointing_enable({"use_reentrant": False})
    unreached = [index for index, layer in enumerate(vision_encoder_layers(model)) if not layer.gradient_checkpointing]
    if unreached:
        raise RuntimeError(f"activation checkpointing did not reach vision encoder layers {unreached}")


__all__ = ["DEFAULT_IMAGE_SIZE", "build_model_and_processor", "enable_gradient_checkpointing", "vision_encoder_layers"]
