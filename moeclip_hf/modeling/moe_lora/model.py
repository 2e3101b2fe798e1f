"""The MoE-LoRA tuner: finds the target encoder layers of a CLIP vision tower and swaps them."""

from __future__ import annotations

import re

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn
from transformers import CLIPVisionConfig

from ...configuration.configuration_moe_lora import MoELoraConfig
from .layer import MoELoraLayer

_ENCODER_LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)$")


def vision_config_of(model: nn.Module) -> CLIPVisionConfig:
    """The `CLIPVisionConfig` of a transformers CLIP vision tower, or a clear error for anything else."""
    config = getattr(model, "config", None)
    if isinstance(config, CLIPVisionConfig):
        return config
    raise ValueError(
        "MoELoraModel adapts a transformers CLIP vision tower (e.g. CLIPVisionModel); "
        f"got {type(model).__name__} with config {type(config).__name__}. For a full CLIPModel pass `model.vision_model`."
    )


class MoELoraModel(BaseTuner):
    """Adds MoE-LoRA layers (METHOD.md, "MoE-LoRA") to a transformers CLIP vision tower.

    Example:

    ```python
    >>> from transformers import CLIPVisionConfig, CLIPVisionModel
    >>> from moeclip_hf.modeling.moe_lora import MoELoraConfig, MoELoraModel
    >>> tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
    ...                                          num_attention_heads=4, image_size=32, patch_size=8))
    >>> tuned = MoELoraModel(tower, MoELoraConfig(layers=(2, 4)))
    >>> tuned.targeted_module_names
    ['encoder.layers.1', 'encoder.layers.3']
    ```

    The wrapped layers are [`MoELoraLayer`]s; after a training forward, [`auxiliary_losses`] sums their ETF and
    balance losses. CLIP's own weights are frozen; routers and B matrices (and A without FOFS) train.
    """

    prefix: str = "moe_"
    tuner_layer_cls = MoELoraLayer
    target_module_mapping: dict[str, list[str]] = {}

    def __init__(self, model: nn.Module, config: MoELoraConfig, adapter_name: str = "default", **kwargs) -> None:
        super().__init__(model, config, adapter_name, **kwargs)

    def _pre_injection_hook(self, model: nn.Module, config: PeftConfig, adapter_name: str) -> None:
        vision_config = vision_config_of(model)
        if not isinstance(config, MoELoraConfig):
            raise ValueError(f"MoELoraModel needs a MoELoraConfig; got {type(config).__name__}.")
        beyond = [layer for layer in config.layers if layer > vision_config.num_hidden_layers]
        if beyond:
            raise ValueError(
                f"MoELoraConfig.layers {beyond} lie beyond the tower, which has "
                f"{vision_config.num_hidden_layers} encoder layers (indices are 1-based)."
            )
        self._hidden_size = vision_config.hidden_size

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        return peft_config

    @staticmethod
    def _check_target_module_exists(peft_config: PeftConfig, key: str) -> bool:
        match = _ENCODER_LAYER_KEY.search(key)
        return match is not None and int(match.group(1)) in peft_config.layer_indices

    def _create_and_replace(
        self,
        peft_config: PeftConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        if isinstance(target, MoELoraLayer):
            target.update_layer(adapter_name, peft_config)
            return
        layer_index = int(_ENCODER_LAYER_KEY.search(current_key).group(1))
        new_module = MoELoraLayer(target, adapter_name, peft_config, self._hidden_size, layer_index)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def moe_layers(self) -> list[MoELoraLayer]:
        """The MoE layers in encoder order."""
        return [module for module in self.model.modules() if isinstance(module, MoELoraLayer)]

    def auxiliary_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums over MoE layers of the ETF and balance losses of the latest training forward (Eq. 8, 9)."""
        outputs = [layer.last_output for layer in self.moe_layers() if layer.last_output is not None]
        if not outputs:
            raise RuntimeError("No auxiliary losses recorded: run a forward pass in training mode first.")
        etf = torch.stack([output.etf_loss for output in outputs]).sum()
        balance = torch.stack([output.balance_loss for output in outputs]).sum()
        return etf, balance
