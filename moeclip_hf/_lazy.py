"""Lazy package attributes: `from moeclip_hf.data import load_benchmark` imports `datasets` only then.

A package's `__init__` names where each public attribute lives; the module is imported on first access
(PEP 562), so importing the package itself stays light (no torch, datasets, matplotlib, gradio, ...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attributes(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package` whose attribute `name` lives in submodule `homes[name]`.

    >>> getattr_, dir_ = lazy_attributes("json", {"JSONDecoder": ".decoder"})
    >>> getattr_("JSONDecoder").__name__
    'JSONDecoder'
    """

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name], package), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
