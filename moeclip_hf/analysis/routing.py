"""Routing statistics of the MoE layers: pure tensor functions behind the paper's expert analyses.

Every function here takes the routing of *patch* tokens: the MoE layers also route the CLS token (METHOD.md,
"MoE-LoRA"), but the paper's analyses are about image patches, so callers drop it first (`patch_routing`).
Shapes use ``P`` patches on a ``g x g`` row-major grid, ``K`` experts, ``k`` routing ranks (top-k) and ``d``
features; experts are 0-based here and 1-based ("Expert 1") in figures and reports, as in the paper.

- Patch-selection maps and the mean renormalised routing weight per expert: Fig. 3 and Figs. 12-15.
- Expert utilisation, the share of top-k assignments each expert receives: Fig. 9 (Sec. E.1).
- Inter-expert cosine similarity of per-image expert features: Fig. 5 and Fig. 10 (Sec. 5, F.2).
- Per-expert means of any per-patch quantity, e.g. the low-level statistics of Tab. 14 (Sec. E.2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "assignment_counts",
    "average_similarity",
    "expert_membership",
    "expert_similarity",
    "expert_utilisation",
    "image_expert_similarity",
    "mean_routing_weights",
    "patch_routing",
    "per_expert_sums",
    "routing_shares",
    "selection_maps",
]


def patch_routing(tokens: Tensor) -> Tensor:
    """Drop the CLS token from a per-token routing tensor: ``(B, 1 + P, ...) -> (B, P, ...)``.

    The MoE layers see the CLS token first (MoECLIPModel's `router_probs`, `selected_experts` and
    `routing_weights`), but it is not an image patch and has no place on the patch grid.
    """
    if tokens.ndim < 2 or tokens.shape[1] < 2:
        raise ValueError(f"Expected (batch, 1 + patches, ...) token routing, got shape {tuple(tokens.shape)}.")
    return tokens[:, 1:]


def _check_selected(selected_experts: Tensor, num_experts: int) -> None:
    if selected_experts.ndim < 2:
        raise ValueError(f"`selected_experts` must have shape (..., patches, k); got {tuple(selected_experts.shape)}.")
    if selected_experts.is_floating_point():
        raise ValueError("`selected_experts` must hold integer expert indices.")
    if selected_experts.numel() and (selected_experts.min() < 0 or selected_experts.max() >= num_experts):
        raise ValueError(f"`selected_experts` holds indices outside [0, {num_experts}).")


def assignment_counts(selected_experts: Tensor, num_experts: int) -> Tensor:
    """How many patches chose each expert at each routing rank.

    Args:
        selected_experts (`torch.LongTensor` of shape `(..., P, k)`):
            Top-k expert indices per patch, best first (as `torch.topk` returns them).
        num_experts (`int`): K.

    Returns:
        `torch.LongTensor` of shape `(k, K)`: entry ``[j, n]`` counts the patches (over all leading dims) whose
        rank-``j + 1`` choice is expert ``n``. Each row sums to the number of patches.
    """
    _check_selected(selected_experts, num_experts)
    one_hot = F.one_hot(selected_experts.long(), num_experts)
    return one_hot.reshape(-1, *one_hot.shape[-2:]).sum(dim=0)


def routing_shares(selected_experts: Tensor, num_experts: int) -> Tensor:
    """Share of patches assigned to each expert, per routing rank: the patch-selection maps as numbers.

    Each patch has exactly one rank-j choice, so the maps of one rank partition the image and their shares
    sum to 1 over the experts (Fig. 3 shows rank 1, Figs. 12-15 ranks 1 and 2).

    Args:
        selected_experts (`torch.LongTensor` of shape `(..., P, k)`): top-k expert indices per patch.
        num_experts (`int`): K.

    Returns:
        `torch.FloatTensor` of shape `(k, K)`, each row summing to 1.
    """
    counts = assignment_counts(selected_experts, num_experts).double()
    return (counts / counts.sum(dim=-1, keepdim=True)).float()


def expert_utilisation(selected_experts: Tensor, num_experts: int) -> Tensor:
    """Share of all top-k routing assignments that each expert receives (Fig. 9, Sec. E.1).

    A patch contributes one assignment per rank, so this is the mean of `routing_shares` over the ranks. An
    expert near zero is rarely used on these images; the paper argues this reflects the data, not redundancy.

    Args:
        selected_experts (`torch.LongTensor` of shape `(..., P, k)`): top-k expert indices per patch.
        num_experts (`int`): K.

    Returns:
        `torch.FloatTensor` of shape `(K,)`, summing to 1.
    """
    counts = assignment_counts(selected_experts, num_experts).sum(dim=0).double()
    return (counts / counts.sum()).float()


def mean_routing_weights(selected_experts: Tensor, routing_weights: Tensor, num_experts: int) -> Tensor:
    """Mean renormalised routing weight of each expert over the patches that chose it at each rank.

    This is the number in the panel titles of Fig. 3 and Figs. 12-15: how strongly the router backs an
    expert where it picks it. The weights are the top-k weights renormalised to sum to 1 (Eq. 1).

    Args:
        selected_experts (`torch.LongTensor` of shape `(..., P, k)`): top-k expert indices per patch.
        routing_weights (`torch.FloatTensor` of shape `(..., P, k)`): their renormalised weights.
        num_experts (`int`): K.

    Returns:
        `torch.FloatTensor` of shape `(k, K)`; NaN where no patch chose the expert at that rank.
    """
    _check_selected(selected_experts, num_experts)
    if routing_weights.shape != selected_experts.shape:
        raise ValueError(
            f"`routing_weights` {tuple(routing_weights.shape)} must match `selected_experts` "
            f"{tuple(selected_experts.shape)}."
        )
    one_hot = F.one_hot(selected_experts.long(), num_experts).double()
    one_hot = one_hot.reshape(-1, *one_hot.shape[-2:])
    weights = routing_weights.double().reshape(-1, routing_weights.shape[-1], 1)
    sums, counts = (one_hot * weights).sum(dim=0), one_hot.sum(dim=0)
    return torch.where(counts > 0, sums / counts.clamp(min=1), math.nan).float()


def selection_maps(selected_experts: Tensor, num_experts: int) -> Tensor:
    """Patch-selection maps (Fig. 3, Figs. 12-15): where each expert is each rank's choice, on the patch grid.

    Args:
        selected_experts (`torch.LongTensor` of shape `(B, P, k)`): top-k expert indices of row-major patches.
        num_experts (`int`): K.

    Returns:
        `torch.BoolTensor` of shape `(B, k, K, g, g)`; for each image and rank, exactly one expert is set at
        every grid cell.
    """
    _check_selected(selected_experts, num_experts)
    if selected_experts.ndim != 3:
        raise ValueError(f"`selected_experts` must have shape (B, P, k); got {tuple(selected_experts.shape)}.")
    batch, patches, top_k = selected_experts.shape
    grid = math.isqrt(patches)
    if grid * grid != patches:
        raise ValueError(f"{patches} patches do not form a square grid.")
    one_hot = F.one_hot(selected_experts.long(), num_experts).bool()
    return one_hot.permute(0, 2, 3, 1).reshape(batch, top_k, num_experts, grid, grid)


def expert_membership(selected_experts: Tensor, num_experts: int) -> Tensor:
    """Which experts each patch chose via top-k, as a 0/1 float matrix: ``(..., P, k) -> (..., P, K)``."""
    _check_selected(selected_experts, num_experts)
    return F.one_hot(selected_experts.long(), num_experts).amax(dim=-2).float()


def image_expert_similarity(features: Tensor, selected_experts: Tensor, num_experts: int) -> tuple[Tensor, Tensor]:
    """Per image, the cosine similarity between experts' mean features (Fig. 5, Fig. 10, Sec. F.2).

    The paper derives an expert's feature in an image by "averaging all patch features that selected that
    expert (via Top-k) within each image". An expert that no patch of an image chose has no feature there, so
    every pair involving it is marked invalid for that image rather than given a made-up similarity.

    Args:
        features (`torch.FloatTensor` of shape `(B, P, d)`): patch features (the MoE layer's output states).
        selected_experts (`torch.LongTensor` of shape `(B, P, k)`): top-k expert indices per patch.
        num_experts (`int`): K.

    Returns:
        similarity (`torch.FloatTensor` of shape `(B, K, K)`): cosines of the per-image expert features.
        valid (`torch.BoolTensor` of shape `(B, K, K)`): both experts were chosen by a patch of the image.
    """
    if features.ndim != 3 or features.shape[:2] != selected_experts.shape[:2]:
        raise ValueError(
            f"`features` must have shape (batch, patches, d) matching `selected_experts` "
            f"{tuple(selected_experts.shape)}, got {tuple(features.shape)}."
        )
    membership = expert_membership(selected_experts, num_experts).double()
    counts = membership.sum(dim=1)
    sums = torch.einsum("bpk,bpd->bkd", membership, features.double())
    directions = F.normalize(sums / counts.clamp(min=1).unsqueeze(-1), dim=-1)
    similarity = directions @ directions.transpose(1, 2)
    chosen = counts > 0
    return similarity.float(), chosen.unsqueeze(2) & chosen.unsqueeze(1)


def average_similarity(similarity_sum: Tensor, pair_counts: Tensor) -> Tensor:
    """The inter-expert similarity matrix from per-pair sums and counts of per-image similarities.

    Args:
        similarity_sum (`torch.Tensor` of shape `(K, K)`): sum over images of the valid per-image cosines.
        pair_counts (`torch.Tensor` of shape `(K, K)`): number of images in which the pair was valid.

    Returns:
        `torch.FloatTensor` of shape `(K, K)`: the mean cosine per pair, symmetric, exactly 1 on the diagonal of
        every expert chosen in at least one image, NaN for pairs never seen together.
    """
    mean = torch.where(pair_counts > 0, similarity_sum.double() / pair_counts.clamp(min=1), math.nan)
    mean = (mean + mean.T) / 2
    diagonal = torch.where(pair_counts.diagonal() > 0, 1.0, math.nan)
    return mean.diagonal_scatter(diagonal.to(mean.dtype)).float()


def expert_similarity(features: Tensor, selected_experts: Tensor, num_experts: int) -> Tensor:
    """Inter-expert cosine similarity averaged over the images of a batch (Fig. 5, Fig. 10).

    Values near +1 mean two experts adapt the same patches the same way (functional redundancy); values near
    0 or below mean they specialise. Pairs are averaged over the images where both experts were chosen.

    Args:
        features (`torch.FloatTensor` of shape `(B, P, d)`): patch features (the MoE layer's output states).
        selected_experts (`torch.LongTensor` of shape `(B, P, k)`): top-k expert indices per patch.
        num_experts (`int`): K.

    Returns:
        `torch.FloatTensor` of shape `(K, K)`, see `average_similarity`.
    """
    similarity, valid = image_expert_similarity(features, selected_experts, num_experts)
    return average_similarity((similarity.double() * valid).sum(dim=0), valid.sum(dim=0))


def per_expert_sums(values: Tensor, assignment: Tensor, num_experts: int) -> tuple[Tensor, Tensor]:
    """Sums of per-patch values over the patches assigned to each expert, and how many there were.

    Used for the statistics of the patches each expert wins as top-1 (Tab. 14): divide the sums by the
    counts, accumulated over a dataset, for the per-expert means.

    Args:
        values (`torch.Tensor` of shape `(..., P, C)`): C quantities per patch.
        assignment (`torch.LongTensor` of shape `(..., P)`): one expert per patch (e.g. the top-1 choice).
        num_experts (`int`): K.

    Returns:
        sums (`torch.DoubleTensor` of shape `(K, C)`) and counts (`torch.LongTensor` of shape `(K,)`).
    """
    if values.shape[:-1] != assignment.shape:
        raise ValueError(f"`values` {tuple(values.shape)} must be `assignment` {tuple(assignment.shape)} plus one dim.")
    _check_selected(assignment.unsqueeze(-1), num_experts)
    one_hot = F.one_hot(assignment.long(), num_experts).reshape(-1, num_experts)
    sums = one_hot.double().T @ values.reshape(-1, values.shape[-1]).double()
    return sums, one_hot.sum(dim=0)
