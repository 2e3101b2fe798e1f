"""Time and peak working memory of one MoECLIP training step: fp32, bf16 autocast, gradient checkpointing.

One step is forward with masks and labels (the loss of Eq. 16), backward and an Adam step over the trainable
parameters, on random weights of the chosen geometry (nothing downloaded). The variants run alternately on
the same batch; medians and ratios to fp32 are printed, ending with one JSON line.

Memory is the step's working memory: on CUDA `max_memory_allocated` minus what was allocated before the step;
on CPU the peak of torch's memory-profiler timeline minus its start.

    python benchmarks/train_step.py                                   # ViT-B/16 at 224 px, batches 2 and 8
    python benchmarks/train_step.py --geometry vit-l14-518 --batch-sizes 8   # the paper's setting (GPU)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from inference_overhead import GEOMETRIES, build_models, timed, working_memory  # noqa: E402

from moeclip_hf.training.model import enable_gradient_checkpointing  # noqa: E402

VARIANTS = ("fp32", "bf16", "bf16+checkpointing")


def make_step(model, batch: int, device: torch.device, variant: str):
    size = model.config.image_size
    generator = torch.Generator().manual_seed(batch)
    pixel_values = torch.randn(batch, 3, size, size, generator=generator).to(device)
    text = torch.nn.functional.normalize(torch.randn(batch, 2, model.config.projection_dim, generator=generator), dim=-1).to(device)
    masks = (torch.rand(batch, 1, size, size, generator=generator) > 0.95).float().to(device)
    labels = torch.arange(batch, device=device) % 2
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.5, 0.999))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if variant != "fp32" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = model(pixel_values=pixel_values, text_embeds=text, masks=masks, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="vit-b16-224")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"geometry": args.geometry, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "results": {}}
    print(f"geometry {args.geometry} on {device}, median of {args.repeats} alternated steps")
    print(f"{'batch':>5}  {'variant':<20}{'median step (s)':>16}{'working memory (MiB)':>22}{'time ratio':>12}{'memory ratio':>14}")
    for batch in args.batch_sizes:
        models = {}
        for variant in VARIANTS:
            _, model = build_models(args.geometry, device, torch.float32)
            model.train()
            if variant.endswith("checkpointing"):
                enable_gradient_checkpointing(model)
            models[variant] = (model, make_step(model, batch, device, variant))
        for _, step in models.values():
            step()
        times = {variant: [] for variant in VARIANTS}
        for _ in range(args.repeats):
            for variant, (_, step) in models.items():
                times[variant].append(timed(step, device))
        memory = {variant: working_memory(step, device) for variant, (_, step) in models.items()}
        for variant in VARIANTS:
            median = statistics.median(times[variant])
            time_ratio = median / statistics.median(times["fp32"])
            memory_ratio = memory[variant] / memory["fp32"]
            print(f"{batch:>5}  {variant:<20}{median:>16.3f}{memory[variant] / 2**20:>22.1f}{time_ratio:>12.3f}{memory_ratio:>14.3f}")
            report["results"][f"batch{batch}/{variant}"] = {
                "median_seconds": round(median, 4), "working_memory_mib": round(memory[variant] / 2**20, 1),
                "time_ratio": round(time_ratio, 4), "memory_ratio": round(memory_ratio, 4),
            }
        del models
    print(json.dumps(report))


if __name__ == "__main__":
    main()
