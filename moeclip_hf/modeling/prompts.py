"""The MoECLIP prompt ensemble (METHOD.md, "Text side").

A class name is turned into a *description* (the benchmark's own wording where one exists, from
`moeclip_hf.benchmarks`), and the description into two groups of sentences: normal and abnormal. The text tower encodes each group and
averages it into T_N and T_A.
"""

from __future__ import annotations

from ..benchmarks import BENCHMARKS, get_benchmark

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

_DESCRIPTION_BY_CLASS: dict[str, str] = {
    name: description for benchmark in BENCHMARKS.values() for name, description in benchmark.descriptions.items()
}
#: DTD-Synthetic classes other than the table's folders are described by their texture family too.
_DTD_FAMILIES = frozenset(BENCHMARKS["dtd"].descriptions.values())


def dataset_domain(dataset: str) -> str:
    """`"industrial"` or `"medical"` for a benchmark name (METHOD.md: the domains)."""
    return get_benchmark(dataset).domain


def describe(class_name: str, dataset: str | None = None) -> str:
    """The prompt description of `class_name`.

    Known benchmark classes get their released description (DTD-Synthetic classes such as
    `Woven_001` map to their texture family); any other name is used as written, which is what
    lets users type free text such as "brain scan". An empty name falls back to "object".
    """
    name = class_name.strip()
    if not name:
        return CLASS_AGNOSTIC_DESCRIPTION
    if dataset is not None:
        benchmark = BENCHMARKS.get(dataset.lower())
        table = {} if benchmark is None else benchmark.descriptions
        if name in table:
            return table[name]
        if dataset.lower() == "dtd":
            family = name.split("_", 1)[0]
            if family in _DTD_FAMILIES:
                return family
    return _DESCRIPTION_BY_CLASS.get(name, name.replace("_", " "))


def is_known_class(class_name: str) -> bool:
    """Whether `class_name` is one of the 14 benchmarks' classes (others fall back to their own name)."""
    return class_name.strip() in _DESCRIPTION_BY_CLASS


def prompt_sentences(description: str) -> tuple[list[str], list[str]]:
    """The normal and abnormal sentences of the ensemble for one description (templates x states)."""
    normal = [template.format(state.format(description)) for state in NORMAL_STATES for template in TEMPLATES]
    abnormal = [template.format(state.format(description)) for state in ABNORMAL_STATES for template in TEMPLATES]
    return normal, abnormal
