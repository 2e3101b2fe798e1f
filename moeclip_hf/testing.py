"""Test helpers: random routing for tiny models, a saved tiny model, and a blocker of package imports.

Only tests (and outside checks) import this module; the package itself never does. The tiny models live in
`moeclip_hf.presets`; `tiny_config` and `tiny_processor` are re-exported here for the README's examples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .modeling.modeling_moeclip import MoECLIPModel
from .presets import tiny_config, tiny_processor, tiny_tokenizer

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
    "randomize_moe",
    "save_tiny_model",
    "tiny_config",
    "tiny_processor",
    "tiny_tokenizer",
]
