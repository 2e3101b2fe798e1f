"""MoECLIP: a frozen CLIP with MoE-LoRA layers in its vision tower and text-prompted anomaly heads.

The module is a little over 400 lines because it keeps transformers' model contract in one class, as
`models/clip/modeling_clip.py` does: the text side and its cache, the patch features, the documented forward with
its losses, and `from_clip`. The pieces with a job of their own live beside it: the tuner (`moe_lora`), heads,
maps, losses, outputs and the CLIP weight conversion (`clip_weights`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTextModelWithProjection, CLIPVisionModel, PreTrainedModel
from transformers.utils import can_return_tuple

from ..benchmarks import DOMAINS
from ..configuration.configuration_moeclip import RELEASED_HIDDEN_ACT, MoECLIPConfig
from .clip_weights import clip_text_state_dict, load_text_state, vision_state_on_grid
from .heads import DepthwiseAdapter, pool_patch_tokens
from .losses import classification_loss, segmentation_loss
from .maps import (
    fuse_image_score,
    image_anomaly_score,
    patch_logits,
    probability_anomaly_map,
    training_probabilities,
)
from .moe_lora import MoELoraLayer, MoELoraModel
from .outputs import MoECLIPOutput, MoECLIPPatchFeatures


class MoECLIPPreTrainedModel(PreTrainedModel):
    config: MoECLIPConfig
    config_class = MoECLIPConfig
    base_model_prefix = "moeclip"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules = ["CLIPEncoderLayer", "MoELoraLayer", "CLIPVisionEmbeddings", "CLIPTextEmbeddings"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Xavier-uniform for the heads (METHOD.md); CLIP's towers initialise themselves."""
        if isinstance(module, DepthwiseAdapter):
            module.reset_parameters()
        elif isinstance(module, nn.Linear) and getattr(module, "_moeclip_head", False):
            nn.init.xavier_uniform_(module.weight)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _head_linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features, bias=False)
    linear._moeclip_head = True
    return linear


class MoECLIPModel(MoECLIPPreTrainedModel):
    """MoECLIP for zero-shot anomaly detection (METHOD.md).

    The frozen CLIP vision tower runs with MoE-LoRA layers rewriting the outputs of `config.moe_config.layers`;
    the raw post-MoE patch states of `config.feature_layers` go through PAA over `config.paa_scales`, then
    CLIP's post layer norm and the per-layer segmentation projection (Eq. 10-11, in that order); the last
    feature layer's scale-1 states, layer-normed, feed the depth-wise adapter image head. Both are compared
    with the text embeddings of the class's normal and abnormal prompts.

    Example:

    ```python
    >>> from moeclip_hf import MoECLIPModel
    >>> from moeclip_hf.presets import tiny_config, tiny_processor
    >>> model = MoECLIPModel(tiny_config()).eval()
    >>> processor = tiny_processor()
    >>> from PIL import Image
    >>> inputs = processor(images=Image.new("RGB", (40, 30)), class_names=["bottle"], return_tensors="pt")
    >>> out = model(**inputs)
    >>> tuple(out.anomaly_map.shape) == (1, model.config.image_size, model.config.image_size)
    True

    ```
    """

    moe_tuner: MoELoraModel

    def __init__(self, config: MoECLIPConfig) -> None:
        super().__init__(config)
        tuner = MoELoraModel(CLIPVisionModel(config.vision_config), config.moe_config)
        self.vision_model = tuner.model
        # The tuner runs the tower and owns the MoE layers' routing and losses. It shares the tower's modules, and
        # is kept outside the module tree so that the weights keep transformers' CLIP names (`vision_model.*`,
        # not `vision_model.model.*`).
        self.__dict__["moe_tuner"] = tuner
        self.text_model = CLIPTextModelWithProjection(config.text_config)
        hidden, embed = config.vision_config.hidden_size, config.projection_dim
        self.segmentation_projections = nn.ModuleList(_head_linear(hidden, embed) for _ in config.feature_layers)
        if config.image_head == "adapter":
            self.image_head = DepthwiseAdapter(hidden, embed, config.adapter_kernel_size, config.vision_config.layer_norm_eps)
        else:
            self.image_head = _head_linear(hidden, embed)
        text_width = config.text_config.hidden_size
        self.text_projection = _head_linear(text_width, embed) if config.trainable_text_projection else None
        self._prompt_cache: dict[bytes, torch.Tensor] = {}
        self._mark_moe_initialised()
        self.post_init()
        self.freeze_clip()

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "MoECLIPModel":
        """Load a saved MoECLIP model (safetensors); CLIP stays frozen, as after `__init__`.

        Only safetensors weights are read unless `use_safetensors=False` is passed: a folder holding just a
        pickled `pytorch_model.bin` is refused rather than unpickled. transformers materialises loaded
        weights as new parameters, which are trainable by default, so the freeze is applied again here.
        """
        kwargs.setdefault("use_safetensors", True)
        model = super().from_pretrained(*args, **kwargs)
        model.freeze_clip()
        return model

    def _mark_moe_initialised(self) -> None:
        """The MoE layers initialise themselves (zero router, zero B, drawn FOFS): keep transformers' generic
        initialisation of the nested CLIP tower from re-drawing them."""
        for layer in self.moe_layers():
            for module in (layer, layer.moe_router, *layer.moe_router.values(), layer.moe_fofs_A, layer.moe_dropout):
                module._is_hf_initialized = True

    def freeze_clip(self) -> None:
        """Freeze every CLIP weight (and the FOFS matrices); routers, experts' B (A without FOFS) and heads train."""
        for name, parameter in self.named_parameters():
            trainable = not (name.startswith("vision_model.") or name.startswith("text_model."))
            trainable = trainable or any(f".{part}." in name for part in MoELoraLayer.adapter_layer_names)
            parameter.requires_grad_(trainable)

    def moe_layers(self) -> list[MoELoraLayer]:
        """The MoE-LoRA layers of the vision tower, in encoder order."""
        return self.moe_tuner.moe_layers()

    # ----------------------------------------------------------------------------------------------------- text

    def encode_prompts(self, prompt_input_ids: torch.Tensor, prompt_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[T_N, T_A] per image from its prompt ids: (B, P, L) -> (B, 2, e), normalised.

        The first `config.num_normal_prompts` sentences of each image are the normal ones. What the frozen
        text tower computes for a sentence is cached per distinct prompt set, so each class is encoded once
        per process; only the (optional, trainable) text projection runs every call.
        """
        if prompt_input_ids.dim() != 3:
            raise ValueError(f"prompt_input_ids must have shape (batch, prompts, length); got {tuple(prompt_input_ids.shape)}.")
        if prompt_input_ids.is_floating_point() or prompt_input_ids.is_complex() or prompt_input_ids.dtype == torch.bool:
            raise ValueError(f"prompt_input_ids must hold integer token ids; got {prompt_input_ids.dtype}.")
        vocab_size = self.config.text_config.vocab_size
        if prompt_input_ids.numel() and not 0 <= int(prompt_input_ids.min()) <= int(prompt_input_ids.max()) < vocab_size:
            raise ValueError(f"prompt_input_ids holds token ids outside the text tower's vocabulary [0, {vocab_size}).")
        if prompt_attention_mask is not None and prompt_attention_mask.shape != prompt_input_ids.shape:
            raise ValueError(
                f"prompt_attention_mask has shape {tuple(prompt_attention_mask.shape)} but prompt_input_ids "
                f"{tuple(prompt_input_ids.shape)}: they must match."
            )
        num_prompts = prompt_input_ids.shape[1]
        if num_prompts <= self.config.num_normal_prompts:
            raise ValueError(
                f"prompt_input_ids holds {num_prompts} prompts per image, but the first "
                f"{self.config.num_normal_prompts} are normal: no abnormal prompt is left."
            )
        if prompt_attention_mask is None:
            prompt_attention_mask = torch.ones_like(prompt_input_ids)
        sentences = torch.stack(
            [
                self._sentence_embeddings(ids, mask)
                for ids, mask in zip(prompt_input_ids.unbind(0), prompt_attention_mask.unbind(0))
            ]
        )
        return self._class_embeddings(sentences)

    def _sentence_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen part of each sentence's embedding, cached: CLIP's projected text embedding (P, e), or,
        with `trainable_text_projection`, the final-layer-normed EOT state (P, d_t) that the trainable
        projection replaces CLIP's with (METHOD.md, "Text side")."""
        key = input_ids.cpu().numpy().tobytes() + attention_mask.cpu().numpy().tobytes()
        cached = self._prompt_cache.get(key)
        if cached is None:
            # The frozen text tower always runs in full precision, also inside a mixed-precision training step:
            # the cached embeddings then do not depend on where they were first needed.
            device_type = self.text_model.text_projection.weight.device.type
            with torch.no_grad(), torch.autocast(device_type, enabled=False):
                pooled = self.text_model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
                cached = pooled if self.text_projection is not None else self.text_model.text_projection(pooled)
            self._prompt_cache[key] = cached
        return cached.to(self.text_model.text_projection.weight.device)

    def _class_embeddings(self, sentences: torch.Tensor) -> torch.Tensor:
        """(B, P, .) sentence embeddings -> (B, 2, e): the trainable projection and LeakyReLU where configured,
        then normalise each sentence, average per group, normalise again."""
        if self.text_projection is not None:
            sentences = F.leaky_relu(self.text_projection(sentences))
        sentences = F.normalize(sentences.float(), dim=-1)
        split = self.config.num_normal_prompts
        groups = torch.stack([sentences[:, :split].mean(dim=1), sentences[:, split:].mean(dim=1)], dim=1)
        return F.normalize(groups, dim=-1)

    def clear_prompt_cache(self) -> None:
        """Forget the cached sentence embeddings (e.g. after replacing the text tower's weights)."""
        self._prompt_cache.clear()

    # --------------------------------------------------------------------------------------------------- vision

    def _last_layer_needed(self, return_routing: bool) -> int:
        """The deepest layer (1-based) a forward must run: the last feature layer, or the last MoE layer when its
        losses (training) or routing are wanted."""
        last = self.config.feature_layers[-1]
        if self.training or return_routing:
            last = max(last, max(self.config.moe_config.layers))
        return last

    def get_patch_features(
        self, pixel_values: torch.Tensor, layers: Sequence[int] | None = None, return_routing: bool = False
    ) -> MoECLIPPatchFeatures:
        r"""The post-MoE features of the image patches at chosen encoder layers: what the heads, the analyses,
        few-shot memories and exported graphs start from.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, image_size, image_size)`):
                CLIP-normalised images ([`MoECLIPProcessor`]).
            layers (`Sequence[int]`, *optional*, defaults to `config.feature_layers`):
                1-based encoder layers, e.g. `config.moe_config.layers` for the MoE layers' own outputs.
            return_routing (`bool`, *optional*): also return the routing of the MoE layers that ran.

        Returns:
            [`MoECLIPPatchFeatures`]: `patch_features[i]` is layer `layers[i]`'s (batch_size, grid * grid, d).

        Example:

        ```python
        >>> import torch
        >>> from moeclip_hf import MoECLIPModel
        >>> from moeclip_hf.presets import tiny_config
        >>> model = MoECLIPModel(tiny_config()).eval()
        >>> size = model.config.image_size
        >>> features = model.get_patch_features(torch.zeros(1, 3, size, size), return_routing=True)
        >>> [tuple(states.shape) for states in features.patch_features]
        [(1, 64, 64), (1, 64, 64)]
        >>> len(features.selected_experts) == len(model.config.moe_config.layers)
        True

        ```
        """
        self._check_pixel_values(pixel_values)
        layers = list(self.config.feature_layers if layers is None else layers)
        beyond = [layer for layer in layers if not 1 <= layer <= self.config.vision_config.num_hidden_layers]
        if not layers or beyond:
            raise ValueError(f"layers must name encoder layers 1..{self.config.vision_config.num_hidden_layers}; got {layers}.")
        pixel_values = pixel_values.to(self.vision_model.embeddings.patch_embedding.weight.dtype)
        last = max([*layers, *(self.config.moe_config.layers if return_routing else ())])
        states = {
            layer: hidden[:, 1:] for layer, hidden in self.moe_tuner.encoder_states(pixel_values, last) if layer in layers
        }
        return MoECLIPPatchFeatures(
            patch_features=tuple(states[layer] for layer in layers), **self._routing_outputs(return_routing)
        )

    def _routing_outputs(self, return_routing: bool) -> dict[str, tuple[torch.Tensor, ...]]:
        """The routing fields of an output, from the tuner's records of the latest forward."""
        if not return_routing:
            return {}
        records = self.moe_tuner.routing()
        return {
            "router_probs": tuple(record.router_probs for record in records),
            "selected_experts": tuple(record.top_k_indices for record in records),
            "routing_weights": tuple(record.top_k_weights for record in records),
        }

    def _scale_features(self, hidden_states: torch.Tensor, position: int) -> Iterator[torch.Tensor]:
        """Yield proj(LN(PAA_s(x))) (B, e, g, g) for each PAA scale s in `config.paa_scales` order (Eq. 10-11):
        PAA on the raw post-MoE patch states, then the post layer norm, then the segmentation projection.

        Computed exactly, with one projection per layer rather than one per scale. With c = x - mean_d(x) the
        per-token centred states, W the projection and gamma, beta the post layer norm's weight and bias, each
        pooled token is LN(PAA_s(x)) = gamma * PAA_s(c) / sigma_s + beta, because averaging commutes with
        centring (PAA_s(c) = PAA_s(x) - mean_d(PAA_s(x))). So

            proj(LN(PAA_s(x))) = PAA_s(W diag(gamma) c) / sigma_s + W beta,   sigma_s = std_d(PAA_s(c)),

        where W diag(gamma) c is projected once and pooled in e dimensions, and only sigma_s, one number per
        pooled token, needs the d-dimensional pooled states (`benchmarks/paa_features.py` times this against
        projecting every scale). Centring before projecting keeps the mean out of the projected values, so
        nothing cancels in low precision. Scales are yielded one at a time so that a caller reducing each to
        logits never holds all of them.
        """
        layer_norm = self.vision_model.post_layernorm
        projection = self.segmentation_projections[position]
        grid = self.config.grid_size
        patches = hidden_states[:, 1:]
        centred = patches - patches.mean(dim=-1, keepdim=True)
        projected = F.linear(centred, projection.weight * layer_norm.weight)
        offset = F.linear(layer_norm.bias, projection.weight)
        width = centred.shape[-1]
        for scale in self.config.paa_scales:
            norm = torch.linalg.vector_norm(pool_patch_tokens(centred, grid, scale), dim=-1, keepdim=True)
            inverse_std = torch.rsqrt(norm.square() / width + layer_norm.eps)
            feature = torch.addcmul(offset, pool_patch_tokens(projected, grid, scale), inverse_std)
            if self.config.segmentation_leaky_relu:
                feature = F.leaky_relu(feature)
            yield feature.transpose(-1, -2).unflatten(-1, (grid, grid))

    def _image_embedding(self, last_layer_patches: torch.Tensor) -> torch.Tensor:
        """V_image from the layer-normed scale-1 patches of the last feature layer (Eq. 13-14)."""
        if isinstance(self.image_head, DepthwiseAdapter):
            embedding = self.image_head(last_layer_patches)
        else:
            embedding = F.normalize(self.image_head(last_layer_patches), dim=-1).mean(dim=1)
        return F.normalize(embedding, dim=-1) if self.config.renormalize_image_embedding else embedding

    # -------------------------------------------------------------------------------------------------- forward

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        prompt_input_ids: torch.Tensor | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_routing: bool = False,
        domain: str | None = None,
    ) -> MoECLIPOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, image_size, image_size)`):
                CLIP-normalised images ([`MoECLIPProcessor`]).
            prompt_input_ids, prompt_attention_mask (`torch.LongTensor` of shape `(batch_size, prompts, length)`):
                The prompt ensemble of each image's class ([`MoECLIPProcessor`]); normal sentences first.
            text_embeds (`torch.FloatTensor` of shape `(batch_size, 2, projection_dim)`, *optional*):
                Precomputed normalised [T_N, T_A]; used instead of the prompts when given.
            masks (`torch.FloatTensor` of shape `(batch_size, 1, image_size, image_size)`, *optional*):
                Binary ground-truth masks; with `labels`, the loss of Eq. 16 is returned.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*): 0 normal, 1 anomalous.
            return_routing (`bool`, *optional*): also return each MoE layer's routing.
            domain (`str`, *optional*): `"industrial"` or `"medical"`; defaults to `config.domain`.
            return_dict (`bool`, *optional*): `False` gives `MoECLIPOutput.to_tuple()` (transformers' convention).
        """
        self._check_pixel_values(pixel_values)
        # Any floating dtype is accepted and cast to the tower's (a bf16 model takes the processor's float32).
        pixel_values = pixel_values.to(self.vision_model.embeddings.patch_embedding.weight.dtype)
        domain = domain or self.config.domain
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}; got {domain!r}.")
        if text_embeds is None:
            if prompt_input_ids is None:
                raise ValueError("MoECLIPModel needs `prompt_input_ids` (from MoECLIPProcessor) or `text_embeds`.")
            if prompt_input_ids.dim() == 3 and prompt_input_ids.shape[0] != pixel_values.shape[0]:
                raise ValueError(
                    f"prompt_input_ids holds prompts for {prompt_input_ids.shape[0]} images but pixel_values holds "
                    f"{pixel_values.shape[0]}: give one prompt set per image."
                )
            text_embeds = self.encode_prompts(prompt_input_ids, prompt_attention_mask)
        if text_embeds.shape != (pixel_values.shape[0], 2, self.config.projection_dim):
            raise ValueError(
                f"text_embeds must have shape (batch, 2, {self.config.projection_dim}); got {tuple(text_embeds.shape)}."
            )
        if not torch.isfinite(text_embeds).all():
            raise ValueError("text_embeds contains NaN or inf.")

        # Each feature layer is turned into its (small) logits as soon as the tower produces it, so no
        # stack of full token states or feature maps is held while the deeper layers run.
        positions = {layer: position for position, layer in enumerate(self.config.feature_layers)}
        text = text_embeds.to(pixel_values.dtype)
        layer_logits, last_features = [], None
        for layer, hidden in self.moe_tuner.encoder_states(pixel_values, self._last_layer_needed(return_routing)):
            if layer in positions:
                last_features = hidden
                scales = self._scale_features(hidden, positions[layer])
                layer_logits.append(torch.stack([patch_logits(features, text, self.config.logit_scale) for features in scales], dim=1))
        logits = torch.stack(layer_logits, dim=1)
        image_embeds = self._image_embedding(self.vision_model.post_layernorm(last_features[:, 1:]))
        image_logits = torch.einsum("be,bce->bc", image_embeds, text_embeds.to(image_embeds.dtype))

        flat_logits = logits.flatten(1, 2)
        size = self.config.image_size
        kernel, sigma = self.config.blur_kernel_sizes[domain], self.config.blur_sigmas[domain]
        anomaly_map = probability_anomaly_map(flat_logits.float(), size, kernel, sigma)
        anomaly_score = fuse_image_score(
            anomaly_map.flatten(1).amax(dim=1),
            image_anomaly_score(image_logits.float()),
            self.config.score_fusion_weights[domain],
        )

        etf = balance = None
        if self.training and any(record.etf_loss is not None for record in self.moe_tuner.routing()):
            etf, balance = self.moe_tuner.auxiliary_losses()
        loss = seg_loss = cls_loss = None
        if masks is not None or labels is not None:
            if masks is None or labels is None:
                raise ValueError("The loss needs both `masks` and `labels`.")
            if not torch.isfinite(masks).all():
                raise ValueError("masks contains NaN or inf.")
            if not ((labels == 0) | (labels == 1)).all():
                raise ValueError(f"labels must be 0 (normal) or 1 (anomalous); got {labels.tolist()}.")
            seg_loss = segmentation_loss(training_probabilities(flat_logits.float(), size), masks.float())
            cls_loss = classification_loss(image_logits.float(), labels.long())
            loss = seg_loss + cls_loss
            if etf is not None:
                loss = loss + self.config.etf_loss_weight * etf + self.config.balance_loss_weight * balance

        return MoECLIPOutput(
            loss=loss,
            anomaly_map=anomaly_map,
            anomaly_score=anomaly_score,
            patch_logits=logits,
            image_logits=image_logits,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            segmentation_loss=seg_loss,
            classification_loss=cls_loss,
            etf_loss=etf,
            balance_loss=balance,
            **self._routing_outputs(return_routing),
        )

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        size = self.config.image_size
        if not torch.is_tensor(pixel_values) or not pixel_values.is_floating_point():
            raise ValueError("pixel_values must be a floating-point tensor (use MoECLIPProcessor).")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, size, size) or not pixel_values.shape[0]:
            raise ValueError(f"pixel_values must have shape (batch, 3, {size}, {size}), batch >= 1; got {tuple(pixel_values.shape)}.")
        if not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or inf.")

    # ---------------------------------------------------------------------------------------------- from CLIP

    @classmethod
    def from_clip(
        cls,
        name_or_path: str = "openai/clip-vit-large-patch14-336",
        image_size: int = 518,
        **config_kwargs,
    ) -> "MoECLIPModel":
        """Build an untrained MoECLIP model around any transformers CLIP checkpoint (Hub id or folder).

        The vision tower's position embeddings are resized once, here, from the checkpoint's grid to
        `image_size // patch_size` (bicubic, antialias, CLS position kept), so no forward interpolates.
        Further keyword arguments go to [`MoECLIPConfig`] (e.g. `moe_config={"num_experts": 8}`, `feature_layers`).
        """
        clip = CLIPModel.from_pretrained(name_or_path)
        vision_config = clip.config.vision_config.to_dict()
        text_config = clip.config.text_config.to_dict()
        text_config["projection_dim"] = clip.config.projection_dim
        config = MoECLIPConfig(vision_config=vision_config, text_config=text_config, image_size=image_size, **config_kwargs)
        model = cls(config)
        model.load_clip_weights(clip.vision_model.state_dict(), clip_text_state_dict(clip))
        model.config._name_or_path = str(name_or_path)
        return model

    @classmethod
    def from_open_clip(
        cls, path: str | Path, image_size: int = 518, hidden_act: str | None = None, **config_kwargs
    ) -> "MoECLIPModel":
        """Build an untrained MoECLIP model around an OpenAI or open_clip ViT CLIP file (both towers).

        `path` is OpenAI's CLIP file (e.g. `ViT-L-14-336px.pt`, a TorchScript archive, read with TorchScript's
        own loader), an open_clip/OpenAI-layout state dict saved with `torch.save` (`.pt`, `.pth`, `.bin`, read
        with `torch.load(weights_only=True)`) or the same as `.safetensors`. Sizes are read from the tensors; the
        vision position embeddings are resized once to `image_size // patch_size` as in [`from_clip`].

        Args:
            hidden_act (`str`, *optional*): the towers' activation, which the file does not record: OpenAI trained
                its CLIPs with `"quick_gelu"` (the default); the released MoECLIP code runs them with exact
                `"gelu"` (the default with `compatibility="released"`).
            config_kwargs: further [`MoECLIPConfig`] fields (`compatibility`, `moe`, `feature_layers`, ...).

        Raises:
            ValueError: naming the file, for anything that is not a ViT CLIP in these layouts (a pickled object,
                a truncated file, missing weights, a ResNet CLIP, a non-square position grid).
        """
        from ..conversion.files import load_weights_file
        from ..conversion.open_clip import open_clip_state_dict, open_clip_to_transformers, open_clip_tower_configs

        path = Path(path)
        released = config_kwargs.get("compatibility") == "released"
        if hidden_act is None:
            hidden_act = RELEASED_HIDDEN_ACT if released else "quick_gelu"
        elif released and hidden_act != RELEASED_HIDDEN_ACT:
            raise ValueError(
                f"compatibility='released' runs the towers with {RELEASED_HIDDEN_ACT!r}, as the released code does; "
                f"hidden_act={hidden_act!r} contradicts it."
            )
        state = open_clip_state_dict(load_weights_file(path), path)
        vision_config, text_config = open_clip_tower_configs(state, path, hidden_act)
        config = MoECLIPConfig(vision_config=vision_config, text_config=text_config, image_size=image_size, **config_kwargs)
        model = cls(config)
        try:
            model.load_clip_weights(*open_clip_to_transformers(state, path))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        model.config._name_or_path = str(path)
        return model

    def load_clip_weights(self, vision_state: dict[str, torch.Tensor], text_state: dict[str, torch.Tensor]) -> None:
        """Load the frozen CLIP towers: a `CLIPVisionModel` and a `CLIPTextModelWithProjection` state dict.

        The vision position embeddings are resized once, here, from the checkpoint's grid to the model's
        (`clip_weights.resize_position_embeddings`), so no forward interpolates; the tuner puts the tower's
        weights under its MoE layers (`MoELoraModel.load_tower_state_dict`).
        """
        self.moe_tuner.load_tower_state_dict(vision_state_on_grid(vision_state, self.config.grid_size))
        load_text_state(self.text_model, text_state)


__all__ = ["MoECLIPModel", "MoECLIPOutput", "MoECLIPPatchFeatures", "MoECLIPPreTrainedModel"]
