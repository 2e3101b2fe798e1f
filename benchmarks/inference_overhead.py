"""What MoECLIP costs on top of the frozen CLIP vision tower it is built on.

Builds a transformers `CLIPVisionModel` of the chosen geometry (random weights, nothing downloaded) and
a MoECLIP model around the same weights (MoE layers, PAA, heads, maps and scores; text embeddings
passed in, as the model's prompt cache does after a class's first image), then times the two forwards
alternately on the same inputs and reports medians and their ratio.

Memory is the forward's working memory: the peak during one forward minus what was resident before it
(the weights and the input). On CUDA that is `max_memory_allocated`; on CPU it is the peak of the tensor
memory timeline recorded by torch's memory profiler. Both models are measured the same way.

    python benchmarks/inference_overhead.py                      # ViT-L/14 at 518 px (the paper's setting)
    python benchmarks/inference_overhead.py --geometry vit-b16-224 --repeats 5

The last line printed is JSON: {"time_ratio", "memory_ratio", "geometry", "device", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import MemoryProfileTimeline
from transformers import CLIPVisionConfig, CLIPVisionModel

from moeclip_hf import MoECLIPConfig, MoECLIPModel

GEOMETRIES = {
    "vit-l14-518": {
        "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14},
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "projection_dim": 768},
        "image_size": 518,
        "layers": [6, 12, 18, 24],
    },
    "vit-b16-224": {
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 16},
        "text": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8, "projection_dim": 512},
        "image_size": 224,
        "layers": [3, 6, 9, 12],
    },
}


def build_models(geometry: str, device: torch.device, dtype: torch.dtype) -> tuple[CLIPVisionModel, MoECLIPModel]:
    spec = GEOMETRIES[geometry]
    vision = {**spec["vision"], "image_size": spec["image_size"], "hidden_act": "quick_gelu"}
    torch.manual_seed(0)
    tower = CLIPVisionModel(CLIPVisionConfig(**vision)).eval()
    config = MoECLIPConfig(
        vision_config=vision,
        text_config={**spec["text"], "hidden_act": "quick_gelu"},
        image_size=spec["image_size"],
        feature_layers=spec["layers"],
        moe_config={"layers": spec["layers"]},
    )
    model = MoECLIPModel(config).eval()
    model.moe_tuner.load_tower_state_dict(tower.state_dict())
    with torch.no_grad():
        for layer in model.moe_layers():
            torch.nn.init.normal_(layer.moe_router["default"].weight, std=0.02)
            torch.nn.init.normal_(layer.moe_lora_B["default"], std=0.02)
    return tower.to(device, dtype), model.to(device, dtype)


def inputs_for(model: MoECLIPModel, batch: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    size = model.config.image_size
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(batch, 3, size, size, generator=generator).to(device, dtype)
    text = torch.nn.functional.normalize(torch.randn(batch, 2, model.config.projection_dim, generator=generator), dim=-1)
    return pixel_values, text.to(device, dtype)


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def cpu_working_memory(run) -> int:
    """Peak bytes of tensors alive during `run()` beyond those alive when it starts (torch's memory profiler)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    totals = [sum(sample) for sample in sizes]
    return max(totals) - totals[0]


def working_memory(run, device: torch.device) -> int:
    """Peak working memory of one forward: peak during the call minus what was resident before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        return torch.cuda.max_memory_allocated() - before
    return cpu_working_memory(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="vit-l14-518")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards of each model, alternated")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.dtype == "auto":
        args.dtype = "bfloat16" if device.type == "cuda" else "float32"
    dtype = getattr(torch, args.dtype)

    tower, model = build_models(args.geometry, device, dtype)
    pixel_values, text = inputs_for(model, args.batch_size, device, dtype)
    runs = {
        "clip_vision_tower": lambda: tower(pixel_values=pixel_values),
        "moeclip": lambda: model(pixel_values=pixel_values, text_embeds=text),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for run in runs.values():
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(timed(run, device))
    medians = {name: statistics.median(values) for name, values in times.items()}
    with torch.no_grad():
        memory = {name: working_memory(run, device) for name, run in runs.items()}

    print(f"geometry {args.geometry}, batch {args.batch_size}, {args.dtype} on {device}, median of {args.repeats} alternated runs")
    print(f"{'model':<20}{'median time (s)':>18}{'working memory (MiB)':>24}")
    for name in runs:
        print(f"{name:<20}{medians[name]:>18.3f}{memory[name] / 2**20:>24.1f}")
    time_ratio = medians["moeclip"] / medians["clip_vision_tower"]
    memory_ratio = memory["moeclip"] / memory["clip_vision_tower"]
    print(f"time ratio {time_ratio:.3f}, memory ratio {memory_ratio:.3f}")
    print(json.dumps({
        "time_ratio": round(time_ratio, 4),
        "memory_ratio": round(memory_ratio, 4),
        "geometry": args.geometry,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "median_seconds": {name: round(value, 4) for name, value in medians.items()},
        "working_memory_mib": {name: round(value / 2**20, 1) for name, value in memory.items()},
    }))


if __name__ == "__main__":
    main()
