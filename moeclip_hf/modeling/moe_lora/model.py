"""The MoE-LoRA tuner: finds the target encoder layers of a CLIP vision tower, swaps them, and runs the tower.

The tuner owns what the MoE layers compute: it runs the tower layer by layer (`encoder_states`, which yields
the post-MoE token states that `output_hidden_states` cannot give), and collects the routing and auxiliary
losses the layers recorded (`routing`, `auxiliary_losses`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn
from transformers import CLIPVisionConfig

from ...configuration.configuration_moe_lora import MoELoraConfig
from .layer import MoELayerOutput, MoELoraLayer

#: An encoder layer's module name (`vision_model.encoder.layers.5`) or the prefix of its weights' keys.
_ENCODER_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)(?=\.|$)")


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

    The wrapped layers are [`MoELoraLayer`]s. [`encoder_states`] runs the tower and yields each layer's output
    (post-MoE where the layer carries one); after any forward, [`routing`] holds each MoE layer's routing and,
    after a training forward, [`auxiliary_losses`] sums their ETF and balance losses. CLIP's own weights are
    frozen; routers and B matrices (and A without FOFS) train.
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
        match = _ENCODER_LAYER.search(key)
        return match is not None and match.end() == len(key) and int(match.group(1)) in peft_config.layer_indices

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
        layer_index = int(_ENCODER_LAYER.search(current_key).group(1))
        new_module = MoELoraLayer(target, adapter_name, peft_config, self._hidden_size, layer_index)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def moe_layers(self) -> list[MoELoraLayer]:
        """The MoE layers in encoder order."""
        return [module for module in self.model.modules() if isinstance(module, MoELoraLayer)]

    def encoder_states(self, pixel_values: torch.Tensor, num_layers: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Run the tower on `pixel_values` and yield `(layer, states)` for the first `num_layers` encoder layers.

        `layer` is 1-based; `states` (B, 1 + P, d) is the layer's output, post-MoE where the layer carries one.
        These are not what `output_hidden_states` records: in transformers 5 its hooks sit on the wrapped
        (pre-MoE) layers. Stopping early (a smaller `num_layers`) skips the deeper layers' work. The MoE layers'
        records of an earlier forward are cleared first, so `routing` and `auxiliary_losses` speak of this one.
        """
        tower = self.model
        layers = tower.encoder.layers
        num_layers = len(layers) if num_layers is None else num_layers
        for layer in self.moe_layers():
            layer.last_output = None
        hidden = tower.pre_layrnorm(tower.embeddings(pixel_values))
        for index, layer in enumerate(layers[:num_layers]):
            hidden = layer(hidden, None)
            yield index + 1, hidden

    def routing(self) -> list[MoELayerOutput]:
        """The routing of every MoE layer that ran in the latest forward, in encoder order (no hidden states)."""
        return [layer.last_output for layer in self.moe_layers() if layer.last_output is not None]

    def auxiliary_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums over MoE layers of the ETF and balance losses of the latest training forward (Eq. 8, 9)."""
        outputs = [output for output in self.routing() if output.etf_loss is not None]
        if not outputs:
            raise RuntimeError("No auxiliary losses recorded: run a forward pass in training mode first.")
        etf = torch.stack([output.etf_loss for output in outputs]).sum()
        balance = torch.stack([output.balance_loss for output in outputs]).sum()
        return etf, balance

    def load_tower_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a plain `CLIPVisionModel` state dict into the tuned tower, whose target layers gain `base_layer.`.

        The MoE's own weights (routers, experts) are left as they are; any other missing or unexpected key is an
        error naming them.
        """
        targets = {layer.layer_index for layer in self.moe_layers()}

        def wrapped(key: str) -> str:
            match = _ENCODER_LAYER.search(key)
            if match and int(match.group(1)) in targets:
                return f"{key[: match.end()]}.base_layer{key[match.end():]}"
            return key

        mapped = {wrapped(key): value for key, value in state_dict.items()}
        missing, unexpected = self.model.load_state_dict(mapped, strict=False)
        missing = [key for key in missing if ".moe_" not in key and not key.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"CLIP vision weights do not fit the tower: missing {missing}, unexpected {unexpected}.")


__all__ = ["MoELoraModel", "vision_config_of"]
