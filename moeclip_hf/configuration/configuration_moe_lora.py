"""Configuration of the MoE-LoRA tuner (METHOD.md, "MoE-LoRA at the output of layers l")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from peft.config import PeftConfig

#: The PEFT method name. PEFT's `PeftType` enum is closed, so this is a plain string.
MOE_LORA_PEFT_TYPE = "MOE_LORA"

#: Upper bounds that catch absurd (e.g. hostile) configurations before anything is allocated.
MAX_EXPERTS = 1024
MAX_RANK = 4096


@dataclass
class MoELoraConfig(PeftConfig):
    """Configuration of [`MoELoraModel`]: a mixture of LoRA experts, routed per token, at the output of
    chosen encoder layers of a CLIP vision tower.

    The hidden states leaving each target layer are rewritten as
    `x <- residual_weight * m' + (1 - residual_weight) * x`, where `m'` is the top-k mixture of the
    experts `B_n A_n dropout(x) * lora_alpha / r`, rescaled per token to the norm of `x`
    (METHOD.md Eq. 1-5). With `use_fofs=True` the `A_n` are frozen and mutually orthogonal
    (Frozen Orthogonal Feature Separation, Eq. 6).
    """

    layers: tuple[int, ...] = field(
        default=(6, 12, 18, 24),
        metadata={"help": "1-based indices of the encoder layers whose output the MoE rewrites (the paper's l)."},
    )
    num_experts: int = field(default=4, metadata={"help": "Number of LoRA experts K per MoE layer."})
    top_k: int = field(default=2, metadata={"help": "Number of experts each token is routed to (Eq. 1)."})
    r: int = field(default=8, metadata={"help": "Rank of every LoRA expert."})
    lora_alpha: float = field(default=16, metadata={"help": "LoRA scaling numerator: experts are scaled by alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the experts' input during training."})
    residual_weight: float = field(
        default=0.1, metadata={"help": "lambda of Eq. 5: weight of the norm-matched expert mixture in the output."}
    )
    eps: float = field(default=1e-6, metadata={"help": "Added to the mixture's norm in the norm match (Eq. 4)."})
    use_fofs: bool = field(
        default=True,
        metadata={
            "help": "Frozen orthogonal A matrices on disjoint feature chunks (Eq. 6). False gives trainable, "
            "Kaiming-uniform LoRA A matrices (the paper's ablation)."
        },
    )
    fofs_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the FOFS draw. Used only when the matrices are first created: a loaded model keeps "
            "the stored matrices whatever this says."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = MOE_LORA_PEFT_TYPE
        self.layers = tuple(int(layer) for layer in self.layers)
        self.validate()

    def validate(self) -> None:
        """Check every field on its own; checks against a model's size happen when the tuner is built."""
        if not self.layers:
            raise ValueError("MoELoraConfig.layers must name at least one encoder layer.")
        if any(layer < 1 for layer in self.layers):
            raise ValueError(f"MoELoraConfig.layers are 1-based encoder-layer indices; got {self.layers}.")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"MoELoraConfig.layers has duplicates: {self.layers}.")
        if not 1 <= self.num_experts <= MAX_EXPERTS:
            raise ValueError(f"MoELoraConfig.num_experts must be in [1, {MAX_EXPERTS}]; got {self.num_experts}.")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(
                f"MoELoraConfig.top_k must be in [1, num_experts={self.num_experts}]; got {self.top_k}."
            )
        if not 1 <= self.r <= MAX_RANK:
            raise ValueError(f"MoELoraConfig.r must be a positive rank (at most {MAX_RANK}); got {self.r}.")
        if self.lora_alpha <= 0:
            raise ValueError(f"MoELoraConfig.lora_alpha must be positive; got {self.lora_alpha}.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"MoELoraConfig.lora_dropout must be in [0, 1); got {self.lora_dropout}.")
        if not 0.0 <= self.residual_weight <= 1.0:
            raise ValueError(f"MoELoraConfig.residual_weight must be in [0, 1]; got {self.residual_weight}.")
        if self.eps <= 0:
            raise ValueError(f"MoELoraConfig.eps must be positive; got {self.eps}.")

    @classmethod
    def hyperparameter_names(cls) -> tuple[str, ...]:
        """The MoE-LoRA fields (`layers`, `num_experts`, ...): this class's own, not PEFT's bookkeeping ones."""
        inherited = {item.name for item in fields(PeftConfig)}
        return tuple(item.name for item in fields(cls) if item.name not in inherited)

    @classmethod
    def from_hyperparameters(cls, values: Mapping[str, Any] | None, owner: str = "MoELoraConfig") -> MoELoraConfig:
        """A config from a mapping of `hyperparameter_names` (missing ones take their defaults), e.g. the
        `moe_config` of a `config.json`; an unknown name is an error naming `owner`."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.hyperparameter_names()))
        if unknown:
            raise ValueError(f"{owner} has unknown fields {unknown}; known: {list(cls.hyperparameter_names())}.")
        return cls(**values)

    def hyperparameters(self) -> dict[str, Any]:
        """The MoE-LoRA fields as a JSON-friendly dict (tuples as lists), the inverse of `from_hyperparameters`."""
        values = {name: getattr(self, name) for name in self.hyperparameter_names()}
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}

    @property
    def scaling(self) -> float:
        """alpha / r, the LoRA scale of every expert."""
        return self.lora_alpha / self.r

    @property
    def target_modules(self) -> None:
        """PEFT's `BaseTuner` reads this name list of other tuners' configs; MoE-LoRA has none: its targets are the
        encoder layers of `layers` (`MoELoraModel._check_target_module_exists`)."""
        return None

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """The 0-based positions of the target layers in `encoder.layers`."""
        return tuple(layer - 1 for layer in self.layers)


__all__ = ["MAX_EXPERTS", "MAX_RANK", "MOE_LORA_PEFT_TYPE", "MoELoraConfig"]
