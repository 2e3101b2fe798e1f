"""The few facts the analyses read from a model and its processor, and the image as the model saw it."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from .patches import unnormalize

__all__ = ["image_normalisation", "model_view", "moe_layer_numbers", "routing_geometry", "to_model"]


def moe_layer_numbers(model: MoECLIPModel) -> list[int]:
    """The 1-based encoder layers of the MoE layers, in the order the model returns their routing."""
    return [layer.layer_index + 1 for layer in model.moe_layers()]


def routing_geometry(model: MoECLIPModel) -> tuple[int, int]:
    """(number of experts K, routing top-k) of the model's MoE layers."""
    return model.config.moe_config.num_experts, model.config.moe_config.top_k


def image_normalisation(processor: MoECLIPProcessor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The processor's (mean, std) normalisation, needed to recover the pixels the model saw."""
    image_processor = processor.image_processor
    return tuple(image_processor.image_mean), tuple(image_processor.image_std)


def to_model(pixel_values: Tensor, model: MoECLIPModel) -> Tensor:
    """`pixel_values` on the model's device and in its dtype."""
    return pixel_values.to(device=model.device, dtype=model.dtype)


def model_view(pixel_values: Tensor, processor: MoECLIPProcessor) -> np.ndarray:
    """``(B, 3, S, S)`` normalised pixels -> ``(B, S, S, 3)`` uint8 RGB: the resized image the patches come from."""
    mean, std = image_normalisation(processor)
    rgb = unnormalize(pixel_values.detach().cpu(), mean, std)
    return torch.round(rgb * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
