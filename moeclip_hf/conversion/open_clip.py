"""OpenAI / open_clip CLIP weights as transformers CLIP towers.

OpenAI's CLIP files and open_clip's state dicts share one layout: `visual.*` (the vision transformer: `conv1`,
`class_embedding`, `positional_embedding`, `ln_pre`, `transformer.resblocks.N.*`, `ln_post`, `proj`),
`transformer.resblocks.N.*` (the text transformer), `token_embedding`, `positional_embedding`, `ln_final`,
`text_projection` and `logit_scale`. Each residual block holds `ln_1`, `attn.in_proj_{weight,bias}` (query, key
and value stacked), `attn.out_proj`, `ln_2` and `mlp.c_fc` / `mlp.c_proj`.

The sizes are read from the tensors, as OpenAI's own loader does: widths from `conv1` and `ln_final`, depths
from the number of blocks, patch size from `conv1`'s kernel, the grid from the position embeddings, 64-wide
attention heads. The file does not record the activation: OpenAI trained its CLIPs with quick-GELU, which
transformers calls `"quick_gelu"`; the released MoECLIP code runs them with exact GELU (`"gelu"`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

#: Attention head width of OpenAI's and open_clip's CLIPs: heads = width // 64.
HEAD_WIDTH = 64
#: Entries of OpenAI's TorchScript state dict that are not weights (its own loader drops them too).
_NOT_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
#: Weights MoECLIP does not use: the CLIP image projection (the heads work on patch tokens) and the logit scale.
_UNUSED = ("visual.proj", "logit_scale")
_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")
#: Residual-block weight names -> transformers `CLIPEncoderLayer` names (the attention's in_proj is split).
_BLOCK_NAMES = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_VISION_NAMES = {
    "visual.class_embedding": "embeddings.class_embedding",
    "visual.conv1.weight": "embeddings.patch_embedding.weight",
    "visual.positional_embedding": "embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "pre_layrnorm.weight",
    "visual.ln_pre.bias": "pre_layrnorm.bias",
    "visual.ln_post.weight": "post_layernorm.weight",
    "visual.ln_post.bias": "post_layernorm.bias",
}
_TEXT_NAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
}
_REQUIRED = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "token_embedding.weight",
             "positional_embedding", "ln_final.weight", "text_projection")


def open_clip_state_dict(value: object, path: Path) -> dict[str, torch.Tensor]:
    """The CLIP weights in a loaded file: a state dict, or open_clip's `{"state_dict": ...}` training checkpoint
    (its `module.` prefixes dropped). Raises a `ValueError` naming `path` for anything that is not a ViT CLIP."""
    if isinstance(value, dict) and isinstance(value.get("state_dict"), dict):
        value = value["state_dict"]
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path} holds a {type(value).__name__}, not a CLIP state dict.")
    state = {key.removeprefix("module."): tensor for key, tensor in value.items() if key not in _NOT_WEIGHTS}
    if any(key.startswith("visual.layer1.") or key.startswith("visual.attnpool.") for key in state):
        raise ValueError(
            f"{path} is a ResNet CLIP (it has visual.layer1.* and visual.attnpool.* weights): MoECLIP routes the "
            "patch tokens of a vision transformer, so it needs a ViT CLIP (visual.conv1 + visual.transformer)."
        )
    if any(key.startswith("vision_model.") for key in state):
        raise ValueError(
            f"{path} holds a transformers CLIPModel state dict (vision_model.*), not the OpenAI/open_clip layout: "
            "load its folder with MoECLIPModel.from_clip instead."
        )
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise ValueError(f"{path} is not an OpenAI/open_clip ViT CLIP state dict: it lacks {missing}.")
    not_tensors = sorted(key for key, tensor in state.items() if not torch.is_tensor(tensor))
    if not_tensors:
        raise ValueError(f"{path}: the CLIP state dict holds non-tensor entries {not_tensors[:5]}.")
    return state


def _depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    blocks = {int(match.group(2)) for key in state if (match := _BLOCK.match(key)) and key.startswith(prefix)}
    return len(blocks)


def open_clip_tower_configs(state: dict[str, torch.Tensor], path: Path, hidden_act: str) -> tuple[dict, dict]:
    """transformers `CLIPVisionConfig` and `CLIPTextConfig` keyword dicts for the CLIP in `state`."""
    conv = state["visual.conv1.weight"]
    vision_width, patch_size = conv.shape[0], conv.shape[-1]
    positions = state["visual.positional_embedding"].shape[0] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise ValueError(
            f"{path}: visual.positional_embedding holds {positions} patch positions, which is not a square grid; "
            "MoECLIP needs a square one."
        )
    text_width = state["ln_final.weight"].shape[0]
    vocab_size = state["token_embedding.weight"].shape[0]
    vision = {
        "hidden_size": vision_width,
        "intermediate_size": state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": _depth(state, "visual."),
        "num_attention_heads": vision_width // HEAD_WIDTH,
        "patch_size": patch_size,
        "image_size": patch_size * grid,
        "projection_dim": state["visual.proj"].shape[1],
        "hidden_act": hidden_act,
    }
    text = {
        "vocab_size": vocab_size,
        "hidden_size": text_width,
        "intermediate_size": state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": _depth(state, "transformer."),
        "num_attention_heads": text_width // HEAD_WIDTH,
        "max_position_embeddings": state["positional_embedding"].shape[0],
        "projection_dim": state["text_projection"].shape[1],
        "hidden_act": hidden_act,
        # CLIP's vocabulary ends with <|startoftext|>, <|endoftext|>; the text embedding is the <|endoftext|> state.
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
    }
    return vision, text


def _block_weights(state: dict[str, torch.Tensor], prefix: str, target: str) -> dict[str, torch.Tensor]:
    """The residual blocks under `prefix` (`visual.transformer.` or `transformer.`) as transformers encoder layers."""
    out = {}
    for key, tensor in state.items():
        match = _BLOCK.match(key)
        if not match or not key.startswith(prefix + "resblocks."):
            continue
        layer, name = match.group(2), match.group(3)
        base = f"{target}encoder.layers.{layer}."
        if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = name.rsplit("_", 1)[1]
            for projection, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                out[f"{base}self_attn.{projection}.{kind}"] = part
        elif name in _BLOCK_NAMES:
            out[base + _BLOCK_NAMES[name]] = tensor
        else:
            raise ValueError(f"unexpected CLIP weight {key}")
    return out


def open_clip_to_transformers(
    state: dict[str, torch.Tensor], path: Path
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The CLIP in `state` as a `CLIPVisionModel` state dict and a `CLIPTextModelWithProjection` one.

    Tensors keep the file's dtype (loading casts them); the vision position embeddings keep the file's grid.
    """
    known = set(_VISION_NAMES) | set(_TEXT_NAMES) | {"text_projection", *_UNUSED}
    unexpected = sorted(key for key in state if key not in known and not _BLOCK.match(key))
    if unexpected:
        raise ValueError(f"{path}: unexpected weights for an OpenAI/open_clip ViT CLIP: {unexpected[:8]}.")
    try:
        vision = {name: state[key] for key, name in _VISION_NAMES.items()}
        vision.update(_block_weights(state, "visual.transformer.", ""))
        text = {name: state[key] for key, name in _TEXT_NAMES.items()}
        text.update(_block_weights(state, "transformer.", "text_model."))
    except KeyError as error:
        raise ValueError(f"{path}: the CLIP state dict lacks {error.args[0]}.") from error
    except ValueError as error:
        raise ValueError(f"{path}: {error}.") from error
    # OpenAI stores x @ text_projection; transformers' nn.Linear stores the transposed matrix.
    text["text_projection.weight"] = state["text_projection"].T
    return vision, text


__all__ = ["HEAD_WIDTH", "open_clip_state_dict", "open_clip_to_transformers", "open_clip_tower_configs"]
