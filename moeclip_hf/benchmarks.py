"""The benchmarks of the paper: one table that prompts, layouts, evaluation, the model card and the app read.

Each `Benchmark` holds what the method and the reports need to know about one dataset: its registry name,
how it is displayed, its domain (which picks the map blur and the score fusion), its classes with the
description the prompts use for each (METHOD.md, "Class descriptions"), and the paper's figures for it where
METHOD.md has them (Tab. 1). Everything else about a benchmark (its folder layout) lives with the code that
needs it and looks the name up here.

Adding a benchmark is one `Benchmark(...)` entry in `_TABLE` (plus a layout class in
`moeclip_hf.data.layouts` if its folders are new); a new per-benchmark fact is one field with a default.

>>> BENCHMARKS["mvtec"].display_name, BENCHMARKS["mvtec"].domain
('MVTec AD', 'industrial')
>>> BENCHMARKS["mvtec"].descriptions["metal_nut"]
'metal nut which has four notched edges'
>>> BENCHMARKS["brain_mri"].classes
('brain',)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: The two domains; each benchmark belongs to one (METHOD.md, "Class descriptions").
DOMAINS: tuple[str, ...] = ("industrial", "medical")

#: The per-class metrics of `moeclip evaluate`, image-level first: the keys of every results row and the
#: column order of every table (evaluation, model card, demo).
METRIC_NAMES: tuple[str, ...] = (
    "image_auroc",
    "image_ap",
    "image_f1_max",
    "pixel_auroc",
    "pixel_ap",
    "pixel_aupro",
    "pixel_f1_max",
)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the paper.

    Args:
        name: the registry key (`load_benchmark(name, ...)`, `--dataset name`).
        display_name: how tables and the model card name it.
        domain: one of `DOMAINS`.
        descriptions: class name -> the description its prompts use, in the benchmark's class order.
        paper: metric name (of `METRIC_NAMES`) -> the paper's mean over classes, in percent (Tab. 1).
    """

    name: str
    display_name: str
    domain: str
    descriptions: Mapping[str, str]
    paper: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"Benchmark {self.name!r}: domain must be one of {DOMAINS}; got {self.domain!r}.")
        unknown = sorted(set(self.paper) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"Benchmark {self.name!r}: paper figures for unknown metrics {unknown}.")
        object.__setattr__(self, "descriptions", MappingProxyType(dict(self.descriptions)))
        object.__setattr__(self, "paper", MappingProxyType(dict(self.paper)))

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in the benchmark's order."""
        return tuple(self.descriptions)


#: DTD-Synthetic's 12 texture folders; each is described by its texture family (the part before "_").
DTD_CLASSES: tuple[str, ...] = (
    "Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037",
    "Stratified_154", "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127",
)  # fmt: skip
_SCAN = "scan"
_COLON = "colon endoscopy image"

_TABLE = (
    Benchmark(
        "mvtec",
        "MVTec AD",
        "industrial",
        {
            "bottle": "dark bottle",
            "cable": "top view of three cables",
            "capsule": "black and orange capsule",
            "carpet": "gray carpet",
            "grid": "metal or plastic mesh",
            "hazelnut": "single brown hazelnut",
            "leather": "brown leather",
            "metal_nut": "metal nut which has four notched edges",
            "pill": "oval white pill with small red speckles and the letters 'FF' engraved",
            "screw": "screw",
            "tile": "speckled tile surface",
            "transistor": "a three-legged transistor placed vertically",
            "toothbrush": "toothbrush head",
            "wood": "wood surface",
            "zipper": "a black zipper",
        },
        paper={"image_auroc": 93.9, "image_ap": 96.8, "pixel_auroc": 92.5, "pixel_ap": 45.7},
    ),
    Benchmark(
        "visa",
        "VisA",
        "industrial",
        {
            "candle": "candle",
            "capsules": "capsules",
            "cashew": "cashew nut",
            "chewinggum": "chewing gum",
            "fryum": "wheel-shaped fryum snack",
            "macaroni1": "orange macaroni",
            "macaroni2": "scattered yellow macaroni",
            "pcb1": "dual ultrasonic distance sensor pcb module",
            "pcb2": "integrated circuits board",
            "pcb3": "infrared sensor pcb module",
            "pcb4": "battery charging pcb module",
            "pipe_fryum": "pipe-shaped fryum",
        },
        paper={"image_auroc": 83.6, "image_ap": 86.2, "pixel_auroc": 95.6, "pixel_ap": 26.1},
    ),
    Benchmark(
        "btad",
        "BTAD",
        "industrial",
        {
            "01": "bright concentric rings in neon yellow and blue tones against a dark blue background",
            "02": "vertical fabric lines in warm, dusty pink and beige tones",
            "03": "oval concentric circular rings in gradient shades of blue and white",
        },
    ),
    Benchmark("rsdd", "RSDD", "industrial", {"rsdd": "metal"}),
    Benchmark("dtd", "DTD-Synthetic", "industrial", {name: name.split("_", 1)[0] for name in DTD_CLASSES}),
    Benchmark("brain_mri", "Brain MRI", "medical", {"brain": _SCAN}),
    Benchmark("liver_ct", "Liver CT", "medical", {"liver": _SCAN}),
    Benchmark("retina_oct", "Retina OCT", "medical", {"retina": _SCAN}),
    Benchmark("head_ct", "Head CT", "medical", {"head_ct": _SCAN}),
    Benchmark("colondb", "ColonDB", "medical", {"colondb": _COLON}),
    Benchmark("clinicdb", "ClinicDB", "medical", {"clinicdb": _COLON}),
    Benchmark("cvc300", "CVC-300", "medical", {"cvc300": _COLON}),
    Benchmark("endo", "Endo", "medical", {"endo": "polyp"}),
    Benchmark("kvasir", "Kvasir", "medical", {"kvasir": _COLON}),
)

#: Benchmark name -> its entry, in the paper's order.
BENCHMARKS: Mapping[str, Benchmark] = MappingProxyType({benchmark.name: benchmark for benchmark in _TABLE})


def get_benchmark(name: str) -> Benchmark:
    """The entry of a benchmark name (any case), or a `ValueError` listing the known names."""
    benchmark = BENCHMARKS.get(name.lower())
    if benchmark is None:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {sorted(BENCHMARKS)}.")
    return benchmark


def display_name(name: str) -> str:
    """How tables name a dataset: the benchmark's display name, or `name` as written for any other dataset."""
    benchmark = BENCHMARKS.get(name.lower())
    return name if benchmark is None else benchmark.display_name


def home_benchmark(class_name: str) -> Benchmark | None:
    """The benchmark whose classes include `class_name`, if any (the first in the table's order)."""
    return next((benchmark for benchmark in _TABLE if class_name in benchmark.descriptions), None)


__all__ = [
    "BENCHMARKS",
    "DOMAINS",
    "DTD_CLASSES",
    "METRIC_NAMES",
    "Benchmark",
    "display_name",
    "get_benchmark",
    "home_benchmark",
]
