"""The outputs of `MoECLIPModel`: `forward`'s maps, scores and losses, and `get_patch_features`' features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class MoECLIPOutput(ModelOutput):
    """Output of [`MoECLIPModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `masks` and `labels` are given):
            Eq. 16: segmentation + classification + etf_loss_weight * ETF + balance_loss_weight * balance.
        anomaly_map (`torch.FloatTensor` of shape `(batch_size, image_size, image_size)`):
            The single-image anomaly map in [0, 1]: the mean over feature layers and PAA scales of the blurred
            anomaly probability of Eq. 12.
        anomaly_score (`torch.FloatTensor` of shape `(batch_size,)`):
            Image score in [0, 1]: `w * max(anomaly_map) + (1 - w) * (cos_A + 1) / 2` with the domain's weight w.
        patch_logits (`torch.FloatTensor` of shape `(batch_size, layers, scales, 2, grid, grid)`):
            `logit_scale * cos(patch, [T_N, T_A])` per feature layer and PAA scale, the patch features being
            proj(LN(PAA(x))) of Eq. 10-11; the benchmark protocol (`moeclip_hf.modeling.maps.protocol_anomaly_map`)
            is computed from these.
        image_logits (`torch.FloatTensor` of shape `(batch_size, 2)`):
            `image_embeds . [T_N, T_A]` (no scale), the classification logits: cosines in the paper's mode,
            the released code's dot products with `renormalize_image_embedding=False`.
        image_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            V_image of Eq. 13-14: the mean of the image head's unit token vectors, L2-normalised again when
            `config.renormalize_image_embedding` (the paper), as it is otherwise (the released code).
        text_embeds (`torch.FloatTensor` of shape `(batch_size, 2, projection_dim)`):
            The normalised [T_N, T_A] used for each image.
        segmentation_loss, classification_loss (`torch.FloatTensor`, *optional*): the parts of `loss`.
        etf_loss, balance_loss (`torch.FloatTensor`, *optional*, training only):
            Sums over the MoE layers of the ETF (Eq. 8) and balance (Eq. 9) losses.
        router_probs (`tuple[torch.FloatTensor]`, *optional*, when `return_routing=True`):
            Per MoE layer, the router's softmax (batch_size, tokens, num_experts), CLS first.
        selected_experts (`tuple[torch.LongTensor]`, *optional*, when `return_routing=True`):
            Per MoE layer, the top-k expert indices (batch_size, tokens, top_k).
        routing_weights (`tuple[torch.FloatTensor]`, *optional*, when `return_routing=True`):
            Per MoE layer, the renormalised weights of the selected experts (batch_size, tokens, top_k).
    """

    loss: torch.FloatTensor | None = None
    anomaly_map: torch.FloatTensor | None = None
    anomaly_score: torch.FloatTensor | None = None
    patch_logits: torch.FloatTensor | None = None
    image_logits: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    segmentation_loss: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    etf_loss: torch.FloatTensor | None = None
    balance_loss: torch.FloatTensor | None = None
    router_probs: tuple[torch.FloatTensor, ...] | None = None
    selected_experts: tuple[torch.LongTensor, ...] | None = None
    routing_weights: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MoECLIPPatchFeatures(ModelOutput):
    """Output of [`MoECLIPModel.get_patch_features`]: the post-MoE features of the image patches.

    Args:
        patch_features (`tuple[torch.FloatTensor]`, one per requested layer, each `(batch_size, grid * grid, hidden_size)`):
            The token states leaving each requested encoder layer (post-MoE where the layer carries one), CLS
            dropped, patches row-major on the `grid x grid` patch grid, raw: before CLIP's post layer norm,
            which is what PAA pools (METHOD.md, "Features for the heads"; `moeclip_hf.modeling.heads`).
        router_probs, selected_experts, routing_weights (`tuple[torch.Tensor]`, *optional*, when `return_routing=True`):
            Per MoE layer that ran, as in [`MoECLIPOutput`] (CLS first).
    """

    patch_features: tuple[torch.FloatTensor, ...] | None = None
    router_probs: tuple[torch.FloatTensor, ...] | None = None
    selected_experts: tuple[torch.LongTensor, ...] | None = None
    routing_weights: tuple[torch.FloatTensor, ...] | None = None


__all__ = ["MoECLIPOutput", "MoECLIPPatchFeatures"]
