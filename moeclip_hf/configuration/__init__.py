"""Configuration of MoECLIP models: the model's config and the MoE-LoRA tuner's."""

from .configuration_moe_lora import MoELoraConfig
from .configuration_moeclip import MoECLIPConfig

__all__ = ["MoECLIPConfig", "MoELoraConfig"]
