"""The two files a user of the released MoECLIP code holds, filled with seeded random values.

Our own implementation of the recipe that produced the fixture in `fixtures/released_checkpoint/` (its README
says which tensors the released code computed from the seed-0 files): each tensor listed in `keys.json` is
drawn from its own generator, seeded with `seed * 1000 + offset + position in its list` (offsets 0 for the
CLIP state dict, 100000 for `image_adapter`, 200000 for `text_adapter`), as a float32 standard normal, then
shaped by the rule of its name below. The CLIP file is saved in float16 as a plain state dict, the checkpoint
in float32 with an Adam state as the released `train.py` leaves it after one step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

KEYS = Path(__file__).parent / "fixtures" / "released_checkpoint" / "keys.json"
CLIP_FILE, CHECKPOINT_FILE = "ViT-L-14-336px.pt", "moe_epoch_1.pth"
_OFFSETS = {"openai_clip_state_dict": 0, "image_adapter": 100_000, "text_adapter": 200_000}


def _is_layer_norm(key: str) -> bool:
    return ".ln_" in key or key.startswith("ln_")


def clip_value(key: str, draw: torch.Tensor) -> torch.Tensor:
    """A CLIP weight from its standard-normal draw: layer norms near (1, 0), small weights, scaled projections."""
    if key == "logit_scale":
        return torch.tensor(math.log(100.0))
    if _is_layer_norm(key):
        return 1 + 0.1 * draw if key.endswith("weight") else 0.02 * draw
    if key in ("visual.proj", "text_projection"):
        return draw / math.sqrt(draw.shape[0])
    if key.endswith("positional_embedding"):
        return 0.01 * draw
    return 0.02 * draw


def fofs_from_draw(draw: torch.Tensor, expert: int, num_experts: int) -> torch.Tensor:
    """A_n (r, d) of Eq. 6 from an (r, d) draw: on expert n's contiguous feature chunk (sizes d // K, the first
    d % K one larger), the transposed Q factor of the draw's chunk columns; zero elsewhere."""
    rank, hidden = draw.shape
    base, extra = divmod(hidden, num_experts)
    sizes = [base + (1 if index < extra else 0) for index in range(num_experts)]
    start = sum(sizes[:expert])
    end = start + sizes[expert]
    q, _ = torch.linalg.qr(draw[:, start:end].T, mode="reduced")
    out = torch.zeros(rank, hidden)
    out[:, start:end] = q.T
    return out


def adapter_value(key: str, draw: torch.Tensor, num_experts: int = 4) -> torch.Tensor:
    """A released adapter weight from its draw: small routers, FOFS A, small B, scaled heads, a near-identity text
    adapter (so the text side stays informative)."""
    if key.endswith("gate.weight"):
        return 0.05 * draw
    if key.endswith("lora_A.weight"):
        return fofs_from_draw(draw, int(key.split(".experts.")[1].split(".")[0]), num_experts)
    if key.endswith("lora_B.weight"):
        return 0.1 * draw
    if key.startswith("seg_proj") or key == "det_proj.adapter.2.weight":
        return draw / math.sqrt(draw.shape[1])
    if key == "det_proj.ln.weight":
        return 1 + 0.2 * draw
    if key == "det_proj.ln.bias":
        return 0.2 * draw
    if key == "det_proj.adapter.0.weight":
        return 0.3 * draw
    if key == "0.fc.0.weight":
        return torch.eye(draw.shape[0]) + 0.02 * draw
    raise KeyError(key)


def draw_tensors(group: str, seed: int, rule, keys: dict | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of one list of `keys.json`, each from its own seeded generator."""
    entries = (keys or json.loads(KEYS.read_text()))[group]
    tensors = {}
    for position, (key, shape) in enumerate(entries):
        generator = torch.Generator().manual_seed(seed * 1000 + _OFFSETS[group] + position)
        tensors[key] = rule(key, torch.randn(shape, generator=generator)).contiguous()
    return tensors


def write_released_files(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write `ViT-L-14-336px.pt` (float16) and `moe_epoch_1.pth` into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = json.loads(KEYS.read_text())
    clip = {key: tensor.half() for key, tensor in draw_tensors("openai_clip_state_dict", seed, clip_value, keys).items()}
    clip_path = folder / CLIP_FILE
    torch.save(clip, clip_path)
    del clip
    image_adapter = draw_tensors("image_adapter", seed, adapter_value, keys)
    text_adapter = draw_tensors("text_adapter", seed, adapter_value, keys)
    trainable = [tensor.clone().requires_grad_(True) for key, tensor in {**text_adapter, **image_adapter}.items() if "lora_A" not in key]
    optimizer = torch.optim.Adam(trainable, lr=5e-5, betas=(0.5, 0.999))
    for parameter in trainable:
        parameter.grad = torch.full_like(parameter, 1e-3)
    optimizer.step()
    checkpoint_path = folder / CHECKPOINT_FILE
    torch.save(
        {"epoch": 1, "optimizer_state_dict": optimizer.state_dict(), "text_adapter": text_adapter, "image_adapter": image_adapter},
        checkpoint_path,
    )
    return clip_path, checkpoint_path
