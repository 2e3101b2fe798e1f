"""Two exact ways to compute the segmentation features proj(LN(PAA_s(x))) of Eq. 10-11, timed side by side.

- `per-scale projection`: pool the d-dimensional post-MoE patch states at every PAA scale, apply the post layer
  norm, project each scale (one d -> e projection per scale).
- `pooled projection` (what `MoECLIPModel` runs): centre the states, project them once with the layer norm's
  weight folded into the projection, pool the e-dimensional result, and divide each pooled token by the
  standard deviation of its pooled d-dimensional state (`MoECLIPModel._scale_features` explains why
  this is exact).

Each variant yields one scale at a time and is reduced to patch logits, as the forward does. Also timed, for
scale: `old order`, the pre-fix proj(PAA(LN(x))) (layer norm first, one projection, pooled
projected maps), which is *not* the paper's order. Each variant runs on the feature layers of one image of
the chosen geometry, alternated, in one process; the medians are printed, and the largest difference of each
exact variant from a float64 reference.

    python benchmarks/paa_features.py                          # ViT-L/14 at 518 px: d 1024, e 768, 37 x 37
    python benchmarks/paa_features.py --geometry vit-b16-224   # d 768, e 512, 14 x 14
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from moeclip_hf import MoECLIPConfig, MoECLIPModel
from moeclip_hf.modeling.heads import pool_patch_tokens
from moeclip_hf.modeling.maps import patch_logits

GEOMETRIES = {
    "vit-l14-518": {"hidden_size": 1024, "projection_dim": 768, "patch_size": 14, "image_size": 518, "heads": 16},
    "vit-b16-224": {"hidden_size": 768, "projection_dim": 512, "patch_size": 16, "image_size": 224, "heads": 12},
}


def build_model(geometry: str, layers: int) -> MoECLIPModel:
    """A MoECLIP model of the geometry's widths and grid, `layers` encoder layers, random layer norm and heads."""
    spec = GEOMETRIES[geometry]
    vision = {"hidden_size": spec["hidden_size"], "intermediate_size": 4 * spec["hidden_size"], "num_hidden_layers": layers,
              "num_attention_heads": spec["heads"], "patch_size": spec["patch_size"]}
    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
            "projection_dim": spec["projection_dim"]}
    every = list(range(1, layers + 1))
    config = MoECLIPConfig(vision_config=vision, text_config=text, image_size=spec["image_size"], feature_layers=every,
                           moe={"layers": every})
    torch.manual_seed(0)
    model = MoECLIPModel(config).eval()
    with torch.no_grad():
        model.vision_model.post_layernorm.weight.normal_(1.0, 0.1)
        model.vision_model.post_layernorm.bias.normal_(0.0, 0.1)
    return model


def per_scale_projection(model: MoECLIPModel, hidden: torch.Tensor, position: int):
    """Yield proj(LN(PAA_s(x))) per scale as written: pool the d-dimensional states, layer norm, project."""
    grid, patches = model.config.grid_size, hidden[:, 1:]
    for scale in model.config.paa_scales:
        pooled = model.vision_model.post_layernorm(pool_patch_tokens(patches, grid, scale))
        yield model.segmentation_projections[position](pooled).transpose(-1, -2).unflatten(-1, (grid, grid))


def old_order(model: MoECLIPModel, hidden: torch.Tensor, position: int):
    """Yield the pre-fix proj(PAA_s(LN(x))): layer norm, one projection, pooled projected maps (not Eq. 10-11)."""
    grid = model.config.grid_size
    projected = model.segmentation_projections[position](model.vision_model.post_layernorm(hidden[:, 1:]))
    for scale in model.config.paa_scales:
        yield pool_patch_tokens(projected, grid, scale).transpose(-1, -2).unflatten(-1, (grid, grid))


def layer_logits(features, text: torch.Tensor) -> torch.Tensor:
    """What the forward makes of a layer's features: (B, S, 2, g, g) patch logits."""
    return torch.stack([patch_logits(feature, text) for feature in features], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="vit-l14-518")
    parser.add_argument("--layers", type=int, default=4, help="feature layers per image (default 4)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    model = build_model(args.geometry, args.layers)
    tokens = model.config.grid_size ** 2 + 1
    generator = torch.Generator().manual_seed(1)
    states = [torch.randn(1, tokens, model.config.vision_config.hidden_size, generator=generator) * 2 + 0.3
              for _ in range(args.layers)]
    text = F.normalize(torch.randn(1, 2, model.config.projection_dim, generator=generator), dim=-1)
    variants = {
        "per-scale projection": lambda hidden, position: per_scale_projection(model, hidden, position),
        "pooled projection": model._scale_features,
        "old order (not exact)": lambda hidden, position: old_order(model, hidden, position),
    }
    with torch.no_grad():
        reference = [torch.stack(list(per_scale_projection(model.double(), hidden.double(), position)), dim=1)
                     for position, hidden in enumerate(states)]
        model.float()
        scale = max(value.abs().max().item() for value in reference)
        for name, run in variants.items():
            error = max((torch.stack(list(run(hidden, position)), dim=1).double() - reference[position]).abs().max().item()
                        for position, hidden in enumerate(states))
            print(f"{name:<24} largest difference from the float64 reference: {error:.2e} ({error / scale:.1e} of the max)")
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                start = time.perf_counter()
                for position, hidden in enumerate(states):
                    layer_logits(run(hidden, position), text)
                times[name].append(time.perf_counter() - start)
    print(f"\n{args.geometry}, {args.layers} feature layers, scales {model.config.paa_scales}, batch 1, float32, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} alternated runs:")
    baseline = statistics.median(times["per-scale projection"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {1000 * median:8.1f} ms   {median / baseline:5.2f}x")


if __name__ == "__main__":
    main()
