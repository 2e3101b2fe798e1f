"""The MoECLIP prompt ensemble and the benchmarks' class descriptions (METHOD.md, "Text side").

A class name is turned into a *description* (the benchmark's own wording where one exists), and the
description into two groups of sentences: normal and abnormal. The text tower encodes each group and
averages it into T_N and T_A.
"""

from __future__ import annotations

TEMPLATES: tuple[str, ...] = ("{}.", "a photo of {}.")
NORMAL_STATES: tuple[str, ...] = ("{}", "a {}", "the {}")
ABNORMAL_STATES: tuple[str, ...] = (
    "a damaged {}",
    "a broken {}",
    "a {} with flaw",
    "a {} with defect",
    "a {} with damage",
)

CLASS_AGNOSTIC_DESCRIPTION = "object"

INDUSTRIAL_DATASETS: tuple[str, ...] = ("mvtec", "visa", "btad", "rsdd", "dtd")
MEDICAL_DATASETS: tuple[str, ...] = (
    "brain_mri",
    "liver_ct",
    "retina_oct",
    "head_ct",
    "colondb",
    "clinicdb",
    "cvc300",
    "endo",
    "kvasir",
)

_DTD_FAMILIES = ("Blotchy", "Fibrous", "Marbled", "Matted", "Mesh", "Perforated", "Stratified", "Woven")
#: The 12 DTD-Synthetic classes; each is described by its texture family.
DTD_CLASSES = (
    "Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037",
    "Stratified_154", "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127",
)

#: dataset -> {class name -> description}, the released constants (METHOD.md, last table).
CLASS_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "mvtec": {
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
    "visa": {
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
    "btad": {
        "01": "bright concentric rings in neon yellow and blue tones against a dark blue background",
        "02": "vertical fabric lines in warm, dusty pink and beige tones",
        "03": "oval concentric circular rings in gradient shades of blue and white",
    },
    "rsdd": {"rsdd": "metal"},
    "dtd": {name: name.split("_", 1)[0] for name in DTD_CLASSES},
    "brain_mri": {"brain": "scan"},
    "liver_ct": {"liver": "scan"},
    "retina_oct": {"retina": "scan"},
    "head_ct": {"head_ct": "scan"},
    "colondb": {"colondb": "colon endoscopy image"},
    "clinicdb": {"clinicdb": "colon endoscopy image"},
    "cvc300": {"cvc300": "colon endoscopy image"},
    "kvasir": {"kvasir": "colon endoscopy image"},
    "endo": {"endo": "polyp"},
}

#: Where the released code's class descriptions differ from the table above (METHOD.md, "What the released code
#: actually runs"), verbatim, typo included: `MoECLIPConfig(class_descriptions="released")` prompts with these.
RELEASED_DESCRIPTION_CHANGES: dict[str, dict[str, str]] = {
    "mvtec": {"capsule": "black asd orange capsule"},
    "btad": {
        "01": "Bright concentric rings in neon yellow and blue tones against a dark blue background, resembling a "
        "stylized wave or energy field radiating outward."
    },
}

#: The description sets a prompt can use: "paper" (`CLASS_DESCRIPTIONS`) or "released" (with the changes above).
DESCRIPTION_SETS: dict[str, dict[str, dict[str, str]]] = {
    "paper": CLASS_DESCRIPTIONS,
    "released": {
        dataset: {**table, **RELEASED_DESCRIPTION_CHANGES.get(dataset, {})} for dataset, table in CLASS_DESCRIPTIONS.items()
    },
}

#: Per description set, class name -> description over all benchmarks (for calls without a dataset).
_DESCRIPTION_BY_CLASS: dict[str, dict[str, str]] = {
    name: {class_name: description for table in tables.values() for class_name, description in table.items()}
    for name, tables in DESCRIPTION_SETS.items()
}


def dataset_domain(dataset: str) -> str:
    """`"industrial"` or `"medical"` for a benchmark name (METHOD.md: the domains)."""
    key = dataset.lower()
    if key in INDUSTRIAL_DATASETS:
        return "industrial"
    if key in MEDICAL_DATASETS:
        return "medical"
    raise ValueError(
        f"Unknown dataset {dataset!r}: expected one of {sorted(INDUSTRIAL_DATASETS + MEDICAL_DATASETS)}."
    )


def describe(class_name: str, dataset: str | None = None, descriptions: str = "paper") -> str:
    """The prompt description of `class_name`.

    Known benchmark classes get their benchmark description (DTD-Synthetic classes such as
    `Woven_001` map to their texture family), from the `descriptions` set: "paper" (METHOD.md's table)
    or "released" (the released code's strings verbatim, `RELEASED_DESCRIPTION_CHANGES`). Any other name
    is used as written, which is what lets users type free text such as "brain scan". An empty name
    falls back to "object".
    """
    if descriptions not in DESCRIPTION_SETS:
        raise ValueError(f"descriptions must be one of {sorted(DESCRIPTION_SETS)}; got {descriptions!r}.")
    name = class_name.strip()
    if not name:
        return CLASS_AGNOSTIC_DESCRIPTION
    if dataset is not None:
        table = DESCRIPTION_SETS[descriptions].get(dataset.lower(), {})
        if name in table:
            return table[name]
        if dataset.lower() == "dtd":
            family = name.split("_", 1)[0]
            if family in _DTD_FAMILIES:
                return family
    return _DESCRIPTION_BY_CLASS[descriptions].get(name, name.replace("_", " "))


def is_known_class(class_name: str) -> bool:
    """Whether `class_name` is one of the 14 benchmarks' classes (others fall back to their own name)."""
    return class_name.strip() in _DESCRIPTION_BY_CLASS["paper"]


def prompt_sentences(description: str) -> tuple[list[str], list[str]]:
    """The normal and abnormal sentences of the ensemble for one description (templates x states)."""
    normal = [template.format(state.format(description)) for state in NORMAL_STATES for template in TEMPLATES]
    abnormal = [template.format(state.format(description)) for state in ABNORMAL_STATES for template in TEMPLATES]
    return normal, abnormal
