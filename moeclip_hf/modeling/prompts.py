"""The MoECLIP prompt ensemble and the benchmarks' class descriptions (METHOD.md, "Text side").

A class name is turned into a *description* (the benchmark's own wording where one exists, read from the
benchmarks table ``moeclip_hf.benchmarks``), and the description into two groups of sentences: normal and
abnormal. The text tower encodes each group and averages it into T_N and T_A.
"""

from __future__ import annotations

from ..benchmarks import BENCHMARKS, CLASS_AGNOSTIC_DESCRIPTION, CLASS_DESCRIPTION_SETS, find_class, get_benchmark

TEMPLATES: tuple[str, ...] = ("{}.", "a photo of {}.")
NORMAL_STATES: tuple[str, ...] = ("{}", "a {}", "the {}")
ABNORMAL_STATES: tuple[str, ...] = (
    "a damaged {}",
    "a broken {}",
    "a {} with flaw",
    "a {} with defect",
    "a {} with damage",
)

def dataset_domain(dataset: str) -> str:
    """`"industrial"` or `"medical"` for a benchmark name (METHOD.md: the domains)."""
    return get_benchmark(dataset).domain


def describe(class_name: str, dataset: str | None = None, released: bool = False) -> str:
    """The prompt description of `class_name`.

    A class of a benchmark (its name, a case variant or an alias such as the released code's ``Brain`` or
    ``Colon_clinicDB``) gets the benchmark's description, `dataset`'s own classes first; DTD-Synthetic's
    folders (``Woven_001``) get their texture family. Any other name is used as written, with underscores
    as spaces, which is what lets users type free text such as "brain scan". An empty name falls back to
    "object". `released` gives the released code's wording where it differs (METHOD.md).
    """
    name = class_name.strip()
    if not name:
        return CLASS_AGNOSTIC_DESCRIPTION
    in_dataset = dataset is not None and dataset.strip().lower() in BENCHMARKS
    found = (in_dataset and find_class(name, dataset)) or find_class(name)
    if found:
        entry, canonical = found
        return entry.describe(canonical, released=released)
    return name.replace("_", " ")


def class_wording(class_name: str, description: str, class_descriptions: str = "paper") -> str:
    """What to prompt a class with, given the `description` its dataset rows carry.

    With `class_descriptions="released"` (`MoECLIPConfig.class_descriptions`), a benchmark class whose rows carry
    the benchmark's own description is prompted with the released code's wording where it differs (MVTec
    ``capsule``, BTAD ``01``); a description of the user's own (free text, a JSON-lines line's) is kept.
    """
    if class_descriptions not in CLASS_DESCRIPTION_SETS:
        raise ValueError(f"class_descriptions must be one of {CLASS_DESCRIPTION_SETS}; got {class_descriptions!r}.")
    found = find_class(class_name) if class_descriptions == "released" else None
    if found and found[0].describe(found[1]) == description:
        return found[0].describe(found[1], released=True)
    return description


def is_known_class(class_name: str) -> bool:
    """Whether `class_name` names a class of the benchmarks table (others fall back to their own name)."""
    return bool(class_name.strip()) and find_class(class_name) is not None


def prompt_sentences(description: str) -> tuple[list[str], list[str]]:
    """The normal and abnormal sentences of the ensemble for one description (templates x states)."""
    normal = [template.format(state.format(description)) for state in NORMAL_STATES for template in TEMPLATES]
    abnormal = [template.format(state.format(description)) for state in ABNORMAL_STATES for template in TEMPLATES]
    return normal, abnormal
