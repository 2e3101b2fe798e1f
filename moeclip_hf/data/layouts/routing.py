"""From a benchmark name and a folder to the layout that reads it, or an error that says where to look.

Each benchmark can be read from the folder conventions listed in :data:`ROUTES`, tried in order: the way
the data is downloaded, the way the released code's metadata indexes it, the way peers (AdaCLIP,
AnomalyCLIP, Bayes-PFL) copy it. The benchmarks table (``moeclip_hf.benchmarks``) states the sources.

:func:`open_layout` tries every route on the root; then on the sub-folders a download wraps the data in
(``Metal15/`` of RSDD, ``test dataset/`` of Endo, ``Kvasir-SEG/``: the table's ``download_folders``), and
says so in the layout's :attr:`~base.BenchmarkLayout.note`. When nothing matches, the error names the root,
the conventions it tried, what the root holds, and the right root when it is one level away.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...benchmarks import Benchmark, get_benchmark
from .base import SPLIT_FOLDERS, BenchmarkLayout, subfolders, summarize_folder
from .bmad import BMADFolders
from .folders import ClassFolders, StateFolders, is_class_folder
from .jsonl import JSONL, JSONLines
from .labelled import DAGMKaggle, KaggleHeadCT, KolektorParts, YesNoFolders
from .paired import ImageMaskFolders
from .visa import VisADataTree, VisASplitTable

logger = logging.getLogger(__name__)

_POLYPS = (ImageMaskFolders, BMADFolders, StateFolders)

#: Benchmark name -> the folder conventions it is read from, in the order they are tried.
ROUTES: dict[str, tuple[type[BenchmarkLayout], ...]] = {
    "mvtec": (ClassFolders,),
    "visa": (VisASplitTable, ClassFolders, VisADataTree),
    "btad": (ClassFolders,),
    "rsdd": (StateFolders,),
    "dtd": (ClassFolders,),
    "brain_mri": (BMADFolders,),
    "liver_ct": (BMADFolders,),
    "retina_oct": (BMADFolders,),
    "head_ct": (StateFolders, KaggleHeadCT, BMADFolders),
    "colondb": _POLYPS,
    "clinicdb": _POLYPS,
    "cvc300": _POLYPS,
    "kvasir": _POLYPS,
    "endo": _POLYPS,
    "mpdd": (ClassFolders,),
    "sdd": (KolektorParts, StateFolders),
    "dagm": (DAGMKaggle, ClassFolders),
    "isic": (ImageMaskFolders, StateFolders),
    "tn3k": (ImageMaskFolders, StateFolders),
    "br35h": (YesNoFolders, StateFolders),
    "brainmri_kaggle": (YesNoFolders, StateFolders),
}


class LayoutNotFoundError(FileNotFoundError):
    """A root holds none of a benchmark's layouts; the message says what was tried and what was found."""


def list_benchmarks() -> list[str]:
    """The names :func:`open_layout` (and ``load_benchmark``) accept, sorted: the table's and "jsonl"."""
    return sorted([*ROUTES, JSONL.name])


def open_layout(
    name: str,
    root: str | os.PathLike[str],
    meta_file: str | os.PathLike[str] | None = None,
    keep_folders: bool = False,
) -> BenchmarkLayout:
    """The layout that reads benchmark `name` from `root`.

    Args:
        name: a benchmark of :func:`list_benchmarks`.
        root: the folder the user points at: the benchmark's root, or a download folder that wraps it.
        meta_file: the JSON-lines file of the "jsonl" layout (default ``<root>/meta.jsonl``).
        keep_folders: read every class folder as its own class, without the table's pooling (DTD-Synthetic's
            12 folders instead of the released protocol's 8 classes).

    Raises:
        ValueError: an unknown benchmark, or `meta_file` for another layout than "jsonl".
        FileNotFoundError: `root` does not exist; :class:`LayoutNotFoundError` when it holds no known layout.
    """
    key = name.strip().lower()
    if key not in ROUTES and key != JSONL.name:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {list_benchmarks()}")
    if meta_file is not None and key != JSONL.name:
        raise ValueError(f"meta_file only applies to the 'jsonl' layout, not to {name!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{key} root folder not found: {root}")
    if key == JSONL.name:
        return JSONLines(root, meta_file=meta_file or "meta.jsonl")
    entry = get_benchmark(key)
    layout = _first_match(entry, root, keep_folders)
    if layout is not None:
        return layout
    for folder in _download_folders(entry, root):
        layout = _first_match(entry, folder, keep_folders)
        if layout is not None:
            layout.note = (
                f"{key}: {root} holds no {entry.display_name} layout itself; reading its '{folder.name}' folder, "
                f"{folder}, as {type(layout).__name__} ({layout.pattern})"
            )
            logger.info(layout.note)
            return layout
    raise LayoutNotFoundError(_not_found_message(entry, root))


def _first_match(entry: Benchmark, root: Path, keep_folders: bool) -> BenchmarkLayout | None:
    for convention in ROUTES[entry.name]:
        if convention.matches(root):
            return convention(root, entry, keep_folders) if issubclass(convention, ClassFolders) else convention(root, entry)
    return None


def _download_folders(entry: Benchmark, root: Path) -> list[Path]:
    """The sub-folders of `root` named as `entry`'s downloads wrap the data, matched case-insensitively."""
    wanted = [name.casefold() for name in entry.download_folders]
    present = {path.name.casefold(): path for path in root.iterdir() if path.is_dir()}
    return [present[name] for name in dict.fromkeys(wanted) if name in present]


def _not_found_message(entry: Benchmark, root: Path) -> str:
    tried = "\n".join(f"  - {convention.pattern}" for convention in ROUTES[entry.name])
    lines = [
        f"no {entry.display_name} ({entry.name}) layout found under {root}.",
        f"Layouts tried (also in a download sub-folder {', '.join(entry.download_folders) or '-'}):\n{tried}",
        f"Found there: {summarize_folder(root)}.",
    ]
    hints = [folder for folder in subfolders(root) if _can_open(entry, folder)]
    inside_a_tree = is_class_folder(root) or root.name.casefold() in SPLIT_FOLDERS  # one class, or a split folder
    if inside_a_tree and root.parent != root and _matches_any(entry, root.parent):
        hints.append(root.parent)
    if hints:
        lines.append(
            "Hint: " + "; ".join(f"{folder} holds the {entry.name} layout: use it as the root" for folder in hints)
        )
    else:
        conventions = dict.fromkeys(convention for route in ROUTES.values() for convention in route)
        found = next((convention for convention in conventions if convention.matches(root)), None)
        if found is not None:
            readers = [name for name, route in ROUTES.items() if found in route]
            lines.append(f"Hint: {root} holds {found.pattern}, a layout of {', '.join(readers)}: is the benchmark right?")
    return "\n".join(lines)


def _matches_any(entry: Benchmark, folder: Path) -> bool:
    return folder.is_dir() and any(convention.matches(folder) for convention in ROUTES[entry.name])


def _can_open(entry: Benchmark, folder: Path) -> bool:
    """Whether :func:`open_layout` would find `entry`'s layout in `folder` (itself or a download sub-folder)."""
    return _matches_any(entry, folder) or any(_matches_any(entry, inner) for inner in _download_folders(entry, folder))
