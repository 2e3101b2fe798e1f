"""A CLIP checkpoint's weights in a MoECLIP model: the vision tower on the new patch grid, the text tower.

`MoECLIPModel.load_clip_weights` puts them in place (`from_clip`, `from_open_clip`); the position embeddings are
resized once, here, so no forward interpolates.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTextModelWithProjection


def clip_text_state_dict(clip: CLIPModel) -> dict[str, torch.Tensor]:
    """A `CLIPModel`'s text tower and text projection as a `CLIPTextModelWithProjection` state dict."""
    state = {f"text_model.{key}": value for key, value in clip.text_model.state_dict().items()}
    state["text_projection.weight"] = clip.text_projection.weight
    return state


def vision_state_on_grid(state: Mapping[str, torch.Tensor], grid_size: int) -> dict[str, torch.Tensor]:
    """A `CLIPVisionModel` state dict with its position embeddings resized to a `grid_size` x `grid_size` grid."""
    state = dict(state)
    state["embeddings.position_embedding.weight"] = resize_position_embeddings(
        state["embeddings.position_embedding.weight"], grid_size
    )
    state.pop("embeddings.position_ids", None)
    return state


def load_text_state(text_model: CLIPTextModelWithProjection, state: Mapping[str, torch.Tensor]) -> None:
    """Load a `CLIPTextModelWithProjection` state dict; an error names what does not fit."""
    missing, unexpected = text_model.load_state_dict(dict(state), strict=False)
    if unexpected or [key for key in missing if not key.endswith("position_ids")]:
        raise ValueError(f"CLIP text weights do not fit: missing {missing}, unexpected {unexpected}.")


def resize_position_embeddings(weight: torch.Tensor, grid_size: int) -> torch.Tensor:
    """(1 + n*n, d) CLIP position embeddings -> (1 + g*g, d): bicubic with antialias, CLS position kept."""
    cls_position, patch_positions = weight[:1], weight[1:]
    old = int(round(patch_positions.shape[0] ** 0.5))
    if old * old != patch_positions.shape[0]:
        raise ValueError(f"Position embeddings of {patch_positions.shape[0]} patches do not form a square grid.")
    if old == grid_size:
        return weight.clone()
    grid = patch_positions.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(grid, size=(grid_size, grid_size), mode="bicubic", align_corners=False, antialias=True)
    resized = resized.permute(0, 2, 3, 1).reshape(grid_size * grid_size, -1).to(weight.dtype)
    return torch.cat([cls_position, resized], dim=0)


__all__ = ["clip_text_state_dict", "load_text_state", "resize_position_embeddings", "vision_state_on_grid"]
