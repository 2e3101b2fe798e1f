"""The authors' released MoECLIP checkpoints, to and from moeclip-hf models.

A user of the released code holds OpenAI's CLIP file (`ViT-L-14-336px.pt`) and the checkpoints its `train.py`
writes, `moe_epoch_N.pth`: `{"epoch", "optimizer_state_dict", "text_adapter", "image_adapter"}`, where

- `image_adapter` holds, for the i-th MoE layer, `moe_adapters.{i}.gate.weight` (K, d), the router, and per
  expert n `moe_adapters.{i}.experts.{n}.lora_A.weight` (r, d), the FOFS A_n, and `...lora_B.weight` (d, r);
  `seg_proj.{i}.fc.weight` (e, d), the segmentation projection of the i-th feature layer; and the image head
  `det_proj.ln.{weight,bias}` (d), `det_proj.adapter.0.weight` (d, 1, kernel), the depth-wise convolution, and
  `det_proj.adapter.2.weight` (e, d, 1), the point-wise one;
- `text_adapter` holds `0.fc.0.weight` (e, d_t), the linear that replaces CLIP's text projection.

`convert_released` maps them into a `MoECLIPModel` with `compatibility="released"` (the A matrices are taken
from the file, never drawn again; the optimiser state is ignored) and `export_released` writes such a file
back from a model, for the released `test.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.moe_lora.layer import feature_chunks
from ..modeling.processing_moeclip import MoECLIPProcessor, clip_image_processor
from .files import load_weights_file, tensor_dict
from .released_defaults import (
    RELEASED_LORA_ALPHA,
    RELEASED_MOE_LAYERS,
    RELEASED_NUM_EXPERTS,
    RELEASED_RANK,
    RELEASED_TOP_K,
)
from .tokenizer import load_clip_tokenizer

#: The text adapter's single weight in `text_adapter`.
TEXT_ADAPTER_KEY = "0.fc.0.weight"
_EXPERT_KEY = re.compile(r"^moe_adapters\.(\d+)\.experts\.(\d+)\.lora_A\.weight$")
_LAYER_KEY = re.compile(r"^moe_adapters\.(\d+)\.")


def read_released_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The `image_adapter` and `text_adapter` state dicts of a released checkpoint (the optimiser state is ignored)."""
    path = Path(path)
    checkpoint = load_weights_file(path)
    if not isinstance(checkpoint, dict) or not {"image_adapter", "text_adapter"} <= set(checkpoint):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{path} is not a released MoECLIP checkpoint: it should be a dict with 'image_adapter' and "
            f"'text_adapter' (as moe_epoch_N.pth is); found {found}."
        )
    return (
        tensor_dict(checkpoint["image_adapter"], path, "image_adapter"),
        tensor_dict(checkpoint["text_adapter"], path, "text_adapter"),
    )


def check_released_structure(
    image_adapter: dict[str, torch.Tensor], path: Path, num_layers: int, num_experts: int, rank: int
) -> None:
    """Compare the number of MoE layers, experts and the rank in a checkpoint with the asked-for ones.

    Run before the CLIP model is built, so a mismatch fails at once with the option that fixes it.
    """
    layers = sorted({int(match.group(1)) for key in image_adapter if (match := _LAYER_KEY.match(key))})
    if len(layers) != num_layers:
        raise ValueError(
            f"{path} holds {len(layers)} MoE layers (moe_adapters.{{{','.join(map(str, layers))}}}) but the "
            f"configuration places {num_layers}: pass {len(layers)} layers with --moe-layers (moe_layers=...)."
        )
    experts = {}
    for key, tensor in image_adapter.items():
        if match := _EXPERT_KEY.match(key):
            experts.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
            if tensor.ndim != 2 or tensor.shape[0] != rank:
                raise ValueError(
                    f"{path}: {key} has shape {tuple(tensor.shape)}, i.e. experts of rank {tensor.shape[0]}, but the "
                    f"configuration has r={rank}: pass --r {tensor.shape[0]} (r=...)."
                )
    counts = sorted({len(found) for found in experts.values()})
    if counts == [num_experts] and any(found != set(range(num_experts)) for found in experts.values()):
        raise ValueError(f"{path}: the experts of a MoE layer are not numbered 0..{num_experts - 1}: {sorted(experts.items())}.")
    if counts != [num_experts]:
        raise ValueError(
            f"{path} holds {'/'.join(map(str, counts)) or 'no'} experts per MoE layer but the configuration has "
            f"num_experts={num_experts}: pass --num-experts {counts[0] if len(counts) == 1 else '...'} (num_experts=...)."
        )


#: Where each released weight lives in a `MoECLIPModel` state dict: (part of the checkpoint, released key,
#: model key, index along the model tensor's expert dim or None). Built per configuration by `released_layout`.
ReleasedEntry = tuple[str, str, str, int | None]


def released_layout(model: MoECLIPModel) -> list[ReleasedEntry]:
    """The one mapping between a released checkpoint and a model, used to import and to export.

    The i-th MoE layer's router, A and B (stacked over experts in the model), the i-th feature layer's
    segmentation projection, the image head and the text adapter.
    """
    config = model.config
    a_name = "moe_fofs_A" if config.moe_config.use_fofs else "moe_lora_A"
    layout = []
    for index, layer in enumerate(config.moe_config.layers):
        prefix, experts = f"vision_model.encoder.layers.{layer - 1}", f"moe_adapters.{index}.experts"
        layout.append(("image_adapter", f"moe_adapters.{index}.gate.weight", f"{prefix}.moe_router.default.weight", None))
        for expert in range(config.moe_config.num_experts):
            layout.append(("image_adapter", f"{experts}.{expert}.lora_A.weight", f"{prefix}.{a_name}.default", expert))
            layout.append(("image_adapter", f"{experts}.{expert}.lora_B.weight", f"{prefix}.moe_lora_B.default", expert))
    for index in range(len(config.feature_layers)):
        layout.append(("image_adapter", f"seg_proj.{index}.fc.weight", f"segmentation_projections.{index}.weight", None))
    for released, ours in (
        ("det_proj.ln.weight", "image_head.layer_norm.weight"),
        ("det_proj.ln.bias", "image_head.layer_norm.bias"),
        ("det_proj.adapter.0.weight", "image_head.depthwise.weight"),
        ("det_proj.adapter.2.weight", "image_head.pointwise.weight"),
    ):
        layout.append(("image_adapter", released, ours, None))
    layout.append(("text_adapter", TEXT_ADAPTER_KEY, "text_projection.weight", None))
    return layout


def released_to_state_dict(
    model: MoECLIPModel, image_adapter: dict[str, torch.Tensor], text_adapter: dict[str, torch.Tensor], path: Path
) -> dict[str, torch.Tensor]:
    """The checkpoint's adapters as `model` state-dict entries, every key and shape checked against the model."""
    parts = {"image_adapter": image_adapter, "text_adapter": text_adapter}
    layout = released_layout(model)
    for part, tensors in parts.items():
        expected = {released for where, released, _, _ in layout if where == part}
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if missing or unexpected:
            raise ValueError(f"{path}: {part} does not fit the configuration: missing {missing[:8]}, unexpected {unexpected[:8]}.")
    state = model.state_dict()
    stacked: dict[str, dict[int, torch.Tensor]] = {}
    mapped = {}
    for part, released, ours, expert in layout:
        tensor = parts[part][released]
        shape = state[ours].shape[1:] if expert is not None else state[ours].shape
        if tensor.shape != shape:
            raise ValueError(
                f"{path}: {part}[{released!r}] has shape {tuple(tensor.shape)} but this configuration and CLIP file "
                f"need {tuple(shape)}: was the checkpoint trained on another CLIP or with other settings?"
            )
        if expert is None:
            mapped[ours] = tensor
        else:
            stacked.setdefault(ours, {})[expert] = tensor
    mapped.update({ours: torch.stack([experts[index] for index in sorted(experts)]) for ours, experts in stacked.items()})
    return mapped


def state_dict_to_released(model: MoECLIPModel) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The inverse of `released_to_state_dict`: a model's adapters as `image_adapter` and `text_adapter`.

    Every tensor gets its own storage: torch.save would otherwise write a whole stacked expert tensor per slice.
    """
    state = model.state_dict()
    parts: dict[str, dict[str, torch.Tensor]] = {"image_adapter": {}, "text_adapter": {}}
    for part, released, ours, expert in released_layout(model):
        tensor = state[ours] if expert is None else state[ours][expert]
        parts[part][released] = tensor.detach().float().clone().contiguous()
    return parts["image_adapter"], parts["text_adapter"]


def is_fofs(matrices: torch.Tensor, tolerance: float = 1e-4) -> bool:
    """Whether (K, r, d) A matrices have the FOFS structure of Eq. 6: A_n zero outside the n-th contiguous feature
    chunk, with orthonormal rows there."""
    num_experts, rank, hidden = matrices.shape
    for expert, (start, end) in enumerate(feature_chunks(hidden, num_experts)):
        inside = matrices[expert, :, start:end].double()
        outside = torch.cat([matrices[expert, :, :start], matrices[expert, :, end:]], dim=-1)
        if outside.numel() and outside.abs().max() > tolerance:
            return False
        if (inside @ inside.T - torch.eye(rank, dtype=torch.float64)).abs().max() > tolerance:
            return False
    return True


def released_fofs(image_adapter: dict[str, torch.Tensor], num_layers: int, num_experts: int) -> bool:
    """Whether every MoE layer's A matrices in a checkpoint are FOFS (else they were trained: FOFS off)."""
    return all(
        is_fofs(torch.stack([image_adapter[f"moe_adapters.{index}.experts.{n}.lora_A.weight"] for n in range(num_experts)]))
        for index in range(num_layers)
    )


def convert_released(
    checkpoint: str | Path,
    clip: str | Path,
    output: str | Path | None = None,
    image_size: int = 518,
    tokenizer: str | Path | None = None,
    moe_layers: Sequence[int] = RELEASED_MOE_LAYERS,
    num_experts: int = RELEASED_NUM_EXPERTS,
    top_k: int = RELEASED_TOP_K,
    r: int = RELEASED_RANK,
    lora_alpha: int = RELEASED_LORA_ALPHA,
    segmentation_leaky_relu: bool = False,
    domain: str = "industrial",
) -> tuple[MoECLIPModel, MoECLIPProcessor]:
    """A released checkpoint and its CLIP file as a `MoECLIPModel` in `compatibility="released"`, with its processor.

    Args:
        checkpoint: the released `moe_epoch_N.pth` (read with `torch.load(weights_only=True)`).
        clip: the CLIP file it was trained on (`ViT-L-14-336px.pt`; see `MoECLIPModel.from_open_clip`).
        output: if given, the model and processor are saved there (`save_pretrained`), ready for
            `from_pretrained`, the pipeline, `moeclip evaluate`, `export` and `serve`.
        image_size: the input size; the position embeddings are resized once to it (the released default is 518).
        tokenizer: CLIP's tokenizer for the processor (`load_clip_tokenizer`: a BPE file, folder or Hub id).
        moe_layers, num_experts, top_k, r, lora_alpha: the released run's MoE settings (its `test.py` defaults);
            the MoE layers also feed the heads, as in the released code. Every shape is checked against them.
        segmentation_leaky_relu: the released option of a LeakyReLU after the segmentation projections.
        domain: "industrial" or "medical", the default blur and score fusion.

    Raises:
        ValueError: naming the file and the mismatch, for a file that is not a released checkpoint (or not a ViT
            CLIP), or whose layers, experts, rank or widths differ from the configuration.
    """
    checkpoint, clip = Path(checkpoint), Path(clip)
    image_adapter, text_adapter = read_released_checkpoint(checkpoint)
    check_released_structure(image_adapter, checkpoint, len(moe_layers), num_experts, r)
    use_fofs = released_fofs(image_adapter, len(moe_layers), num_experts)
    model = MoECLIPModel.from_open_clip(
        clip,
        image_size=image_size,
        compatibility="released",
        moe_config={"layers": list(moe_layers), "num_experts": num_experts, "top_k": top_k, "r": r, "lora_alpha": lora_alpha, "use_fofs": use_fofs},
        feature_layers=list(moe_layers),
        segmentation_leaky_relu=segmentation_leaky_relu,
        domain=domain,
    )
    state = released_to_state_dict(model, image_adapter, text_adapter, checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(state) & set(missing):
        raise ValueError(f"{checkpoint}: the mapped weights do not fit the model (unexpected {unexpected}).")
    model.freeze_clip()
    model.eval()
    text_tokenizer = load_clip_tokenizer(tokenizer)
    vocab_size = model.config.text_config.vocab_size
    if len(text_tokenizer) != vocab_size:
        raise ValueError(
            f"The tokenizer {tokenizer or 'default'} has {len(text_tokenizer)} tokens but {clip}'s text tower has "
            f"{vocab_size}: pass the tokenizer of this CLIP."
        )
    processor = MoECLIPProcessor(image_processor=clip_image_processor(image_size), tokenizer=text_tokenizer)
    model.config._name_or_path = str(checkpoint)
    if output is not None:
        model.save_pretrained(output)
        processor.save_pretrained(output)
    return model, processor


def export_released(model: MoECLIPModel, output: str | Path, epoch: int = 0) -> Path:
    """Write a model's adapters as a released checkpoint (`{"epoch", "image_adapter", "text_adapter"}`).

    The released `test.py` evaluates such a file with the CLIP weights the model was built on. Only a model in
    `compatibility="released"` computes what that code computes from these weights (exact GELU, the text
    adapter, the dot-product image score), with the released heads (depth-wise adapter, features at the MoE
    layers): others are refused. No optimiser state is written.
    """
    config = model.config
    problems = []
    if config.compatibility != "released":
        problems.append(f"compatibility is {config.compatibility!r}, not 'released'")
    if config.image_head != "adapter":
        problems.append(f"the image head is {config.image_head!r}, not the depth-wise adapter")
    if list(config.feature_layers) != list(config.moe_config.layers):
        problems.append(f"the feature layers {config.feature_layers} are not the MoE layers {config.moe_config.layers}")
    if problems:
        raise ValueError(
            "The released code would not compute this model's outputs from its weights: " + "; ".join(problems)
            + ". Train or convert with compatibility='released' (train.py --compatibility released)."
        )
    image_adapter, text_adapter = state_dict_to_released(model)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": int(epoch), "image_adapter": image_adapter, "text_adapter": text_adapter}, output)
    return output


__all__ = [
    "RELEASED_LORA_ALPHA",
    "RELEASED_MOE_LAYERS",
    "RELEASED_NUM_EXPERTS",
    "RELEASED_RANK",
    "RELEASED_TOP_K",
    "TEXT_ADAPTER_KEY",
    "check_released_structure",
    "convert_released",
    "export_released",
    "is_fofs",
    "read_released_checkpoint",
    "released_fofs",
    "released_layout",
    "released_to_state_dict",
    "state_dict_to_released",
]
