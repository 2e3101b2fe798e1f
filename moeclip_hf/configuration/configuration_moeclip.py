"""MoECLIP model configuration."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

from ..benchmarks import DOMAINS
from ..benchmarks import CLASS_DESCRIPTION_SETS
from .configuration_moe_lora import MoELoraConfig

#: The values of `MoECLIPConfig.compatibility`: the paper's method, or the authors' released code as it runs.
COMPATIBILITY_MODES = ("paper", "released")
#: Every way the released code departs from the paper (METHOD.md, "What the released code actually runs"), as
#: the `MoECLIPConfig` field that selects it -> (paper value, released value). `compatibility` fills each field
#: left unset from its column; with `compatibility="released"` a field set to anything else is refused.
COMPATIBILITY_FIELDS: dict[str, tuple[Any, Any]] = {
    "renormalize_image_embedding": (True, False),
    "trainable_text_projection": (False, True),
    "class_descriptions": ("paper", "released"),
    "etf_loss_weight": (0.01, 0.0),
    "balance_loss_weight": (0.01, 0.0),
    "train_in_eval_mode": (False, True),
    "color_jitter": (True, False),
    "augment_after_normalization": (False, True),
    "protocol_normalization": ("always", "outside_unit_range"),
}
#: The fields of `COMPATIBILITY_FIELDS` that only change how a trained model is evaluated, not its weights or its
#: training: what `MoECLIPConfig.apply_evaluation_compatibility` (`moeclip evaluate --compatibility`) switches.
EVALUATION_FIELDS = ("renormalize_image_embedding", "class_descriptions", "protocol_normalization")
#: The activation the released code runs both CLIP towers with (exact GELU; OpenAI trained them with quick-GELU).
RELEASED_HIDDEN_ACT = "gelu"
#: `protocol_normalization` values: min-max normalise a class's summed maps always (METHOD.md), or only when
#: they leave [0, 1] (the released protocol).
PROTOCOL_NORMALIZATIONS = ("always", "outside_unit_range")
#: Per-domain defaults of the test-time map blur and image-score fusion (METHOD.md, "Outputs").
DEFAULT_BLUR_KERNEL_SIZES = {"industrial": 7, "medical": 9}
DEFAULT_BLUR_SIGMAS = {"industrial": 1.0, "medical": 1.5}
DEFAULT_SCORE_FUSION_WEIGHTS = {"industrial": 0.5, "medical": 1.0}
#: Upper bound on a few sizes so that a hostile config.json fails validation before anything is allocated.
_MAX_IMAGE_SIZE = 8192
#: Upper bounds of the towers' sizes, far above any CLIP (ViT-bigG/14: width 1664, MLP 8192, 48 layers): a
#: config.json asking for 10**9 layers would otherwise build a billion modules before any check could fail.
_MAX_TOWER_SIZES = {
    "hidden_size": 16384,
    "intermediate_size": 65536,
    "num_hidden_layers": 256,
    "num_attention_heads": 256,
    "patch_size": _MAX_IMAGE_SIZE,
    "num_channels": 64,
    "projection_dim": 16384,
    "vocab_size": 1_000_000,
    "max_position_embeddings": 65536,
}


@strict(accept_kwargs=True)
class MoECLIPConfig(PreTrainedConfig):
    r"""
    Configuration of a [`MoECLIPModel`]: a frozen CLIP (vision and text towers) whose vision tower carries
    MoE-LoRA layers, with the MoECLIP segmentation and image heads (METHOD.md).

    Args:
        vision_config (`dict` or `CLIPVisionConfig`, *optional*):
            The CLIP vision tower. Its `image_size` is set to `image_size`: the position embeddings of a
            pretrained tower are resized once, at load (see [`MoECLIPModel.from_clip`]).
        text_config (`dict` or `CLIPTextConfig`, *optional*):
            The CLIP text tower; its `projection_dim` is the text embedding size e.
        image_size (`int`, *optional*, defaults to 518):
            Side of the square input image, a multiple of the vision tower's patch size.
        moe_config (`dict` or `MoELoraConfig`, *optional*):
            The MoE-LoRA hyper-parameters (`layers`, `num_experts`, `top_k`, `r`, `lora_alpha`, `lora_dropout`,
            `residual_weight`, `eps`, `use_fofs`, `fofs_seed`); defaults are the paper's. Held as a
            [`MoELoraConfig`] (`config.moe_config.num_experts`); a `dict` of some fields keeps the others'
            defaults. `moe=` is accepted as the same argument (the key of configs saved before this name).
        feature_layers (`list[int]`, *optional*, defaults to `[6, 12, 18, 24]`):
            1-based encoder layers whose (post-MoE) token states feed the heads.
        paa_scales (`list[int]`, *optional*, defaults to `[1, 3, 5]`):
            Window sizes of the patch-aggregation average (Eq. 10); odd, 1 is the identity.
        logit_scale (`float`, *optional*, defaults to 100.0):
            Scale of the patch-text cosines that form the map logits.
        segmentation_leaky_relu (`bool`, *optional*, defaults to `False`):
            Released-code variant: a LeakyReLU after each segmentation projection (the paper has none; the
            released `test.py` default is off too).
        compatibility (`str`, *optional*, defaults to `"paper"`):
            `"paper"`: every field below that is left unset takes the paper's value, and each may be set on its
            own (the ablation switches). `"released"`: every one takes the value of the authors' released code,
            as it actually runs, and both CLIP towers run exact GELU (`hidden_act="gelu"`); a field set to
            anything else is refused. Saved in config.json, so a model stays in its mode.
        renormalize_image_embedding (`bool`, *optional*):
            Paper (Eq. 14), `True`: the image score uses the cosine with V_image, the mean of unit token vectors
            normalised again. Released, `False`: the dot product with that mean as it is (norm about 0.5-0.8),
            in the classification loss and at test.
        trainable_text_projection (`bool`, *optional*):
            Paper, `False`: the frozen text tower with CLIP's own text projection. Released, `True`: a trainable
            linear d_t -> e (no bias) + LeakyReLU on each sentence's final-layer-normed EOT state *replaces*
            CLIP's text projection (the released `text_adapter`).
        class_descriptions (`str`, *optional*):
            The benchmark class descriptions of the prompts: `"paper"` (METHOD.md's table) or `"released"` (the
            released constants verbatim, MVTec capsule "black asd orange capsule" and the long BTAD 01
            sentence included). Callers pass it to the processor.
        train_in_eval_mode (`bool`, *optional*):
            Released, `True`: the model trains in evaluation mode throughout, so no ETF or balance loss is
            computed and no LoRA dropout applies. Paper: `False`.
        color_jitter (`bool`, *optional*):
            Training augmentation: the brightness/contrast/saturation jitter (paper, `True`); the released code
            defines but never applies it (`False`).
        augment_after_normalization (`bool`, *optional*):
            Released, `True`: the geometric augmentation runs on the CLIP-normalised image with nearest
            interpolation, so the fill outside the image is the mean colour. Paper, `False`: on [0, 1] pixels,
            bilinear, black fill.
        protocol_normalization (`str`, *optional*):
            The benchmark protocol's per-class min-max normalisation of the summed maps: `"always"` (paper) or
            `"outside_unit_range"`, only when a class's values leave [0, 1] (released).
        image_head (`str`, *optional*, defaults to `"adapter"`):
            `"adapter"`: the depth-wise adapter of Eq. 13; `"linear"`: a plain linear d -> e (an ablation).
        adapter_kernel_size (`int`, *optional*, defaults to 3):
            Kernel of the depth-wise adapter's convolution over the token sequence.
        num_normal_prompts (`int`, *optional*, defaults to 6):
            How many of each class's prompt sentences are the normal ones (they come first); the processor's
            prompt ensemble gives 6 normal and 10 abnormal sentences.
        domain (`str`, *optional*, defaults to `"industrial"`):
            Default domain, which picks the map blur and the image-score fusion (METHOD.md, "Outputs").
        blur_kernel_sizes / blur_sigmas (`dict[str, ...]`, *optional*):
            Gaussian blur of the maps per domain; industrial (7, 1.0), medical (9, 1.5).
        score_fusion_weights (`dict[str, float]`, *optional*):
            Weight w of max(map) in the image score `w * max(map) + (1 - w) * s`; industrial 0.5, medical 1.0.
        anomaly_threshold (`float`, *optional*, defaults to 0.5):
            Score above which an image is called anomalous by the pipeline and the CLI.
        etf_loss_weight / balance_loss_weight (`float`, *optional*):
            Weights of the auxiliary losses in the total loss (Eq. 16): 0.01 in the paper, 0 in the released
            code (its balance weight is read from a misspelt attribute, and its ETF loss never runs).

    Example:

    ```python
    >>> from moeclip_hf import MoECLIPConfig
    >>> config = MoECLIPConfig()  # ViT-L/14 geometry at 518 px, the paper's hyper-parameters
    >>> config.grid_size
    37
    >>> released = MoECLIPConfig(compatibility="released")  # what the authors' released code runs
    >>> released.trainable_text_projection, released.renormalize_image_embedding, released.vision_config.hidden_act
    (True, False, 'gelu')

    ```
    """

    model_type = "moeclip"
    sub_configs_defaults = {"vision_config": CLIPVisionConfig, "text_config": CLIPTextConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    image_size: int = 518
    moe_config: dict | MoELoraConfig | None = None
    feature_layers: list[int] | tuple[int, ...] = (6, 12, 18, 24)
    paa_scales: list[int] | tuple[int, ...] = (1, 3, 5)
    logit_scale: float = 100.0
    segmentation_leaky_relu: bool = False
    compatibility: str = "paper"
    renormalize_image_embedding: bool | None = None
    trainable_text_projection: bool | None = None
    class_descriptions: str | None = None
    train_in_eval_mode: bool | None = None
    color_jitter: bool | None = None
    augment_after_normalization: bool | None = None
    protocol_normalization: str | None = None
    image_head: str = "adapter"
    adapter_kernel_size: int = 3
    num_normal_prompts: int = 6
    domain: str = "industrial"
    blur_kernel_sizes: dict | None = None
    blur_sigmas: dict | None = None
    score_fusion_weights: dict | None = None
    anomaly_threshold: float = 0.5
    etf_loss_weight: float | None = None
    balance_loss_weight: float | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        legacy_moe = kwargs.pop("moe", None)
        if legacy_moe is not None:
            if self.moe_config is not None:
                raise ValueError("MoECLIPConfig takes `moe_config` or its older name `moe`, not both.")
            self.moe_config = legacy_moe
        if not isinstance(self.moe_config, MoELoraConfig):
            self.moe_config = MoELoraConfig.from_hyperparameters(self.moe_config, owner="MoECLIPConfig.moe_config")
        if self.compatibility not in COMPATIBILITY_MODES:
            raise ValueError(f"MoECLIPConfig.compatibility must be one of {COMPATIBILITY_MODES}; got {self.compatibility!r}.")
        if self.vision_config is None:
            self.vision_config = _VIT_L14_336_VISION
        if self.text_config is None:
            self.text_config = _VIT_L14_336_TEXT
        super().__post_init__(**kwargs)
        self.vision_config.image_size = self.image_size
        column = COMPATIBILITY_MODES.index(self.compatibility)
        for name, values in COMPATIBILITY_FIELDS.items():
            if getattr(self, name) is None:
                setattr(self, name, values[column])
        if self.compatibility == "released":
            self.vision_config.hidden_act = self.text_config.hidden_act = RELEASED_HIDDEN_ACT
        self.feature_layers = [int(layer) for layer in self.feature_layers]
        self.paa_scales = [int(scale) for scale in self.paa_scales]
        self.blur_kernel_sizes = {**DEFAULT_BLUR_KERNEL_SIZES, **(self.blur_kernel_sizes or {})}
        self.blur_sigmas = {**DEFAULT_BLUR_SIGMAS, **(self.blur_sigmas or {})}
        self.score_fusion_weights = {**DEFAULT_SCORE_FUSION_WEIGHTS, **(self.score_fusion_weights or {})}
        # Also run by `validate()` (after construction, and by save_pretrained); here first so that a bad
        # config.json fails with a plain ValueError before any weight is allocated.
        self.validate_architecture()

    def validate_architecture(self) -> None:
        """Cross-field checks of every size against the towers and of the compatibility mode, with a
        `ValueError` naming the field (the `@strict` class validation of transformers' configs).

        Run at construction (also from a config.json), before any weight is allocated, and again by
        `validate()`, which `save_pretrained` calls: a field changed after construction is checked there.
        """
        super().validate_architecture()
        self._validate_compatibility()
        vision = self.vision_config
        for tower in ("vision_config", "text_config"):
            _check_tower_sizes(tower, getattr(self, tower))
        if not 0 < self.image_size <= _MAX_IMAGE_SIZE:
            raise ValueError(f"MoECLIPConfig.image_size must be in (0, {_MAX_IMAGE_SIZE}]; got {self.image_size}.")
        if self.image_size % vision.patch_size:
            raise ValueError(
                f"MoECLIPConfig.image_size={self.image_size} is not a multiple of the patch size {vision.patch_size}."
            )
        layers = vision.num_hidden_layers
        for name, indices in (("feature_layers", self.feature_layers), ("moe_config.layers", self.moe_config.layers)):
            if not indices:
                raise ValueError(f"MoECLIPConfig.{name} must name at least one layer.")
            beyond = [index for index in indices if not 1 <= index <= layers]
            if beyond:
                raise ValueError(
                    f"MoECLIPConfig.{name} {beyond} are not encoder layers of the vision tower (1..{layers}, 1-based)."
                )
        if any(later <= earlier for earlier, later in zip(self.feature_layers, self.feature_layers[1:])):
            raise ValueError(f"MoECLIPConfig.feature_layers must be strictly increasing; got {self.feature_layers}.")
        if not self.paa_scales or any(scale < 1 or scale % 2 == 0 for scale in self.paa_scales):
            raise ValueError(f"MoECLIPConfig.paa_scales must be odd positive window sizes; got {self.paa_scales}.")
        if any(scale > self.grid_size for scale in self.paa_scales):
            raise ValueError(f"MoECLIPConfig.paa_scales {self.paa_scales} exceed the {self.grid_size}x{self.grid_size} patch grid.")
        if self.image_head not in ("adapter", "linear"):
            raise ValueError(f"MoECLIPConfig.image_head must be 'adapter' or 'linear'; got {self.image_head!r}.")
        if self.adapter_kernel_size < 1 or self.adapter_kernel_size % 2 == 0:
            raise ValueError(f"MoECLIPConfig.adapter_kernel_size must be odd and positive; got {self.adapter_kernel_size}.")
        if self.domain not in DOMAINS:
            raise ValueError(f"MoECLIPConfig.domain must be one of {DOMAINS}; got {self.domain!r}.")
        for name in ("blur_kernel_sizes", "blur_sigmas", "score_fusion_weights"):
            missing = [domain for domain in DOMAINS if domain not in getattr(self, name)]
            if missing:
                raise ValueError(f"MoECLIPConfig.{name} lacks the domains {missing}.")
        if any(size < 1 or size % 2 == 0 for size in self.blur_kernel_sizes.values()):
            raise ValueError(f"MoECLIPConfig.blur_kernel_sizes must be odd and positive; got {self.blur_kernel_sizes}.")
        if any(sigma <= 0 for sigma in self.blur_sigmas.values()):
            raise ValueError(f"MoECLIPConfig.blur_sigmas must be positive; got {self.blur_sigmas}.")
        if any(not 0.0 <= weight <= 1.0 for weight in self.score_fusion_weights.values()):
            raise ValueError(f"MoECLIPConfig.score_fusion_weights must lie in [0, 1]; got {self.score_fusion_weights}.")
        if not 1 <= self.num_normal_prompts:
            raise ValueError(f"MoECLIPConfig.num_normal_prompts must be positive; got {self.num_normal_prompts}.")
        if not 0.0 <= self.anomaly_threshold <= 1.0:
            raise ValueError(f"MoECLIPConfig.anomaly_threshold must lie in [0, 1]; got {self.anomaly_threshold}.")
        if self.etf_loss_weight < 0 or self.balance_loss_weight < 0:
            raise ValueError("MoECLIPConfig.etf_loss_weight and balance_loss_weight must be non-negative.")
        if self.text_config.projection_dim is None or self.text_config.projection_dim < 1:
            raise ValueError("MoECLIPConfig.text_config.projection_dim (the text embedding size) must be positive.")

    def _validate_compatibility(self) -> None:
        if self.compatibility not in COMPATIBILITY_MODES:
            raise ValueError(f"MoECLIPConfig.compatibility must be one of {COMPATIBILITY_MODES}; got {self.compatibility!r}.")
        if self.class_descriptions not in CLASS_DESCRIPTION_SETS:
            raise ValueError(
                f"MoECLIPConfig.class_descriptions must be one of {CLASS_DESCRIPTION_SETS}; got {self.class_descriptions!r}."
            )
        if self.protocol_normalization not in PROTOCOL_NORMALIZATIONS:
            raise ValueError(
                f"MoECLIPConfig.protocol_normalization must be one of {PROTOCOL_NORMALIZATIONS}; "
                f"got {self.protocol_normalization!r}."
            )
        if self.compatibility != "released":
            return
        for name, (_, released) in COMPATIBILITY_FIELDS.items():
            if getattr(self, name) != released:
                raise ValueError(
                    f"MoECLIPConfig(compatibility='released') runs the released code's {name}={released!r}; got "
                    f"{getattr(self, name)!r}. Leave {name} unset, or use compatibility='paper' to set each field freely."
                )
        for tower in ("vision_config", "text_config"):
            hidden_act = getattr(self, tower).hidden_act
            if hidden_act != RELEASED_HIDDEN_ACT:
                raise ValueError(
                    f"MoECLIPConfig(compatibility='released') runs both CLIP towers with exact GELU "
                    f"({RELEASED_HIDDEN_ACT!r}), as the released code does; {tower}.hidden_act is {hidden_act!r}."
                )

    def apply_evaluation_compatibility(self, compatibility: str) -> None:
        """Evaluate as `compatibility` does ("paper" or "released"): set the `EVALUATION_FIELDS` (image score,
        class descriptions, protocol normalisation) to that mode's values.

        The other deviations (the towers' activation, the text projection, training) belong to the weights and
        stay. A released-mode config switched to the paper's evaluation becomes `compatibility="paper"`, whose
        fields are free; a paper-mode config keeps its mode with the released evaluation fields.
        """
        if compatibility not in COMPATIBILITY_MODES:
            raise ValueError(f"compatibility must be one of {COMPATIBILITY_MODES}; got {compatibility!r}.")
        column = COMPATIBILITY_MODES.index(compatibility)
        if compatibility != self.compatibility and self.compatibility == "released":
            self.compatibility = "paper"
        for name in EVALUATION_FIELDS:
            setattr(self, name, COMPATIBILITY_FIELDS[name][column])
        self.validate_architecture()

    def to_dict(self) -> dict[str, Any]:
        """`PreTrainedConfig.to_dict`, with `moe_config` as the plain dict of its hyper-parameters."""
        output = super().to_dict()
        output["moe_config"] = self.moe_config.hyperparameters()
        return output

    @property
    def grid_size(self) -> int:
        """Side of the patch grid, e.g. 37 for ViT-L/14 at 518 px."""
        return self.image_size // self.vision_config.patch_size

    @property
    def projection_dim(self) -> int:
        """The text embedding size e, which the segmentation and image heads project to."""
        return self.text_config.projection_dim


def _check_tower_sizes(tower: str, config: PreTrainedConfig) -> None:
    """Every size field of a tower config is an integer in [1, its `_MAX_TOWER_SIZES` bound] (None: unset)."""
    for name, maximum in _MAX_TOWER_SIZES.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise ValueError(f"MoECLIPConfig.{tower}.{name} must be an integer in [1, {maximum}]; got {value!r}.")


_VIT_L14_336_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}
_VIT_L14_336_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}

__all__ = [
    "COMPATIBILITY_FIELDS",
    "COMPATIBILITY_MODES",
    "DEFAULT_BLUR_KERNEL_SIZES",
    "DEFAULT_BLUR_SIGMAS",
    "DEFAULT_SCORE_FUSION_WEIGHTS",
    "DOMAINS",
    "EVALUATION_FIELDS",
    "PROTOCOL_NORMALIZATIONS",
    "RELEASED_HIDDEN_ACT",
    "MoECLIPConfig",
]
