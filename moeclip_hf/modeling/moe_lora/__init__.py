"""MoE-LoRA: patch-routed LoRA experts with frozen orthogonal A matrices (FOFS), as a PEFT tuner."""

from ...configuration.configuration_moe_lora import MOE_LORA_PEFT_TYPE, MoELoraConfig
from .layer import MoELayerOutput, MoELoraLayer, feature_chunks, fofs_matrices
from .losses import balance_loss, etf_loss, etf_target
from .model import MoELoraModel

__all__ = [
    "MOE_LORA_PEFT_TYPE",
    "MoELayerOutput",
    "MoELoraConfig",
    "MoELoraLayer",
    "MoELoraModel",
    "balance_loss",
    "etf_loss",
    "etf_target",
    "feature_chunks",
    "fofs_matrices",
]
