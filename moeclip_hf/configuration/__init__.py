"""Configuration of MoECLIP models: the model's config (with its released-code compatibility mode) and the
MoE-LoRA tuner's."""

from .configuration_moe_lora import MoELoraConfig
from .configuration_moeclip import (
    COMPATIBILITY_FIELDS,
    COMPATIBILITY_MODES,
    EVALUATION_FIELDS,
    RELEASED_HIDDEN_ACT,
    MoECLIPConfig,
)

__all__ = [
    "COMPATIBILITY_FIELDS",
    "COMPATIBILITY_MODES",
    "EVALUATION_FIELDS",
    "RELEASED_HIDDEN_ACT",
    "MoECLIPConfig",
    "MoELoraConfig",
]
