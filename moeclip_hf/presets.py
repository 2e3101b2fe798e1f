"""Small, offline MoECLIP models: the tiny model (`train.py --clip tiny`, tests) and the demo's embedded default.

These are product defaults: `moeclip demo` and `train.py --clip tiny` build them. Nothing here downloads anything. The tiny tokenizer is a real `CLIPTokenizer` over a byte-level vocabulary
(the 256 bytes of CLIP's byte-to-unicode table, each also as a word end), so any text encodes.
"""

from __future__ import annotations

from typing import Any

from transformers import CLIPTokenizer

from .configuration import MoECLIPConfig
from .conversion.tokenizer import BOS_TOKEN, EOS_TOKEN, clip_tokenizer, clip_vocabulary
from .modeling.processing_moeclip import MoECLIPProcessor, clip_image_processor

#: Image side of the tiny model (an 8 x 8 grid of 8-pixel patches).
TINY_IMAGE_SIZE = 64
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
        "image_size": TINY_IMAGE_SIZE,
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
        "moe_config": {"layers": [layers // 2, layers], "r": 4},
    }
    return MoECLIPConfig(vision_config=vision, text_config=text, **{**defaults, **overrides})


def demo_config(image_size: int = TINY_IMAGE_SIZE, **overrides: Any) -> MoECLIPConfig:
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
    defaults = {"feature_layers": [2, 4, 6], "moe_config": {"layers": [2, 4, 6], "r": 8}, "image_size": image_size,
                "trainable_text_projection": True}
    return tiny_config(vision=vision, text=text, **{**defaults, **overrides})


def tiny_processor(image_size: int = TINY_IMAGE_SIZE) -> MoECLIPProcessor:
    """A working processor for the tiny models: CLIP preprocessing at `image_size` and the tiny tokenizer."""
    return MoECLIPProcessor(image_processor=clip_image_processor(image_size), tokenizer=tiny_tokenizer())


__all__ = ["TINY_IMAGE_SIZE", "demo_config", "tiny_config", "tiny_processor", "tiny_tokenizer"]
