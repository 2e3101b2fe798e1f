"""Tiny MoECLIP configurations, an offline tokenizer and processor: for tests, the demo and outside checks.

Nothing here downloads anything. The tiny tokenizer is a real `CLIPTokenizer` over a byte-level vocabulary
(the 256 bytes of CLIP's byte-to-unicode table, each also as a word end), so any text encodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import CLIPTokenizer

from .configuration import MoECLIPConfig
from .conversion.tokenizer import BOS_TOKEN, EOS_TOKEN, clip_tokenizer, clip_vocabulary
from .modeling.modeling_moeclip import MoECLIPModel
from .modeling.processing_moeclip import MoECLIPProcessor, clip_image_processor

#: A few merges of frequent prompt fragments; a byte vocabulary needs none, they only shorten sequences.
_MERGES = [("t", "h"), ("th", "e</w>"), ("e", "d</w>"), ("o", "f</w>"), ("a", "n")]


def tiny_tokenizer() -> CLIPTokenizer:
    """A working `CLIPTokenizer` built offline: 256 byte symbols, their word-final forms, a few merges."""
    return clip_tokenizer(clip_vocabulary(_MERGES), _MERGES)


def tiny_config(**overrides: Any) -> MoECLIPConfig:
    """A small MoECLIP configuration (4 layers of width 64, patch 8, 64 px, 8 x 8 patches) for seconds-long tests.

    Keyword arguments override the MoECLIP fields; `vision` and `text` dicts override the towers' fields.
    """
    tokenizer = tiny_tokenizer()
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "patch_size": 8,
        "image_size": 64,
        "hidden_act": "quick_gelu",
        **overrides.pop("vision", {}),
    }
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "projection_dim": 32,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "bos_token_id": tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        "eos_token_id": tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        "pad_token_id": tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        **overrides.pop("text", {}),
    }
    layers = vision["num_hidden_layers"]
    defaults = {
        "image_size": vision["image_size"],
        "feature_layers": [layers // 2, layers],
        "moe": {"layers": [layers // 2, layers], "r": 4},
    }
    return MoECLIPConfig(vision_config=vision, text_config=text, **{**defaults, **overrides})


def demo_config(image_size: int = 64, **overrides: Any) -> MoECLIPConfig:
    """The embedded default of `moeclip demo`: 6 layers of width 128, patch 4 (a 16 x 16 grid at 64 px), MoE and
    features at layers 2, 4, 6, and a text side that can tell the classes apart.

    Like every config here it is not pretrained; two choices make a random backbone learnable in minutes:

    - patch 4: a token sees a 4 x 4 pixel square, so a small defect fills most of its patches instead of a
      corner of an 8 x 8 one;
    - a text tower initialised 10 times wider than CLIP's default (`initializer_factor=10`) and the released
      trainable text projection (on the EOT state, in place of CLIP's): at CLIP's default init a random text
      tower gives the seen classes nearly the same anomaly direction `T_A - T_N` (mean pairwise cosine 0.78
      between the demo's three seen classes for seed 0; 0.40 at factor 10), so one detector would have to
      serve all the seen categories.

    With stripes, checkers, marble, weave and tablet seen, these two choices took the demo's held-out pixel
    AUROC after training from 68.3 (patch 8, 128 px, default text init) to 81.2 (measured before the PAA-order
    fix and the released meaning of the text projection; the cosines above are measured with both).
    """
    vision = {"num_hidden_layers": 6, "hidden_size": 128, "intermediate_size": 512, "num_attention_heads": 4,
              "patch_size": 4, "image_size": image_size, **overrides.pop("vision", {})}
    text = {"initializer_factor": 10.0, **overrides.pop("text", {})}
    defaults = {"feature_layers": [2, 4, 6], "moe": {"layers": [2, 4, 6], "r": 8}, "image_size": image_size,
                "trainable_text_projection": True}
    return tiny_config(vision=vision, text=text, **{**defaults, **overrides})


def tiny_processor(image_size: int = 64) -> MoECLIPProcessor:
    """A working processor for the tiny models: CLIP preprocessing at `image_size` and the tiny tokenizer."""
    return MoECLIPProcessor(image_processor=clip_image_processor(image_size), tokenizer=tiny_tokenizer())


#: Python source for the start of a subprocess script: after it, importing `moeclip_hf` raises ImportError, so
#: the script shows that exported files (remote code, handler, Space app) work where the package is absent.
BLOCK_PACKAGE_IMPORTS = """
import sys

class _BlockMoECLIPHF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "moeclip_hf":
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _BlockMoECLIPHF())
"""


def randomize_moe(model: MoECLIPModel, seed: int = 0, expert_std: float = 0.1) -> MoECLIPModel:
    """Random routers and non-zero experts in every MoE layer, as after training, and evaluation mode.

    A fresh model routes uniformly (zero router) and its experts add nothing (zero B); tests of routing,
    maps and saving want both to be exercised.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.moe_layers():
            router, experts = layer.moe_router["default"].weight, layer.moe_lora_B["default"]
            router.copy_(torch.randn(router.shape, generator=generator))
            experts.copy_(torch.randn(experts.shape, generator=generator) * expert_std)
    return model.eval()


def save_tiny_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny model (random routing, see `randomize_moe`) with its processor; return the folder."""
    torch.manual_seed(seed)
    randomize_moe(MoECLIPModel(tiny_config()), seed).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return Path(folder)


__all__ = [
    "BLOCK_PACKAGE_IMPORTS",
    "demo_config",
    "randomize_moe",
    "save_tiny_model",
    "tiny_config",
    "tiny_processor",
    "tiny_tokenizer",
]
