"""The MoE auxiliary losses: the simplex-ETF expert-diversity loss and the load-balance loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def etf_target(num_experts: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Gram matrix of a simplex equiangular tight frame: 1 on the diagonal, -1/(K-1) off it (Eq. 7)."""
    if num_experts < 2:
        return torch.ones(num_experts, num_experts, device=device, dtype=dtype)
    off_diagonal = -1.0 / (num_experts - 1)
    target = torch.full((num_experts, num_experts), off_diagonal, device=device, dtype=dtype)
    return target.fill_diagonal_(1.0)


def etf_loss(expert_outputs: torch.Tensor) -> torch.Tensor:
    """ETF loss of Eq. 8 on expert outputs of shape (..., K, d).

    Each token's K expert outputs are normalised to unit length; their K x K Gram matrix is pulled
    towards the simplex-ETF Gram matrix. The loss is the mean over tokens and over the K^2 entries
    of the squared difference. A single expert has nothing to be diverse from: K = 1 gives 0.
    """
    if expert_outputs.dim() < 2:
        raise ValueError(f"expert_outputs must have shape (..., K, d); got {tuple(expert_outputs.shape)}.")
    num_experts = expert_outputs.shape[-2]
    if num_experts < 2:
        return expert_outputs.new_zeros((), dtype=torch.float32)
    unit = F.normalize(expert_outputs.float(), dim=-1)
    gram = unit @ unit.transpose(-1, -2)
    target = etf_target(num_experts, device=gram.device, dtype=gram.dtype)
    return (gram - target).pow(2).mean()


def balance_loss(router_probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Load-balance loss of Eq. 9: the squared coefficient of variation of the expert load.

    `router_probs` (..., K) are the full softmax probabilities before top-k; the load vector sums them
    over every token of the batch, and CV^2 = var(b) / (mean(b)^2 + eps) with the unbiased variance.
    K = 1 gives 0.
    """
    num_experts = router_probs.shape[-1]
    if num_experts < 2:
        return router_probs.new_zeros((), dtype=torch.float32)
    load = router_probs.float().reshape(-1, num_experts).sum(dim=0)
    return load.var(unbiased=True) / (load.mean().pow(2) + eps)
