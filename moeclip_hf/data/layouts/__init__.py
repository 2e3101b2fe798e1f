"""Folder layouts: one small class per folder convention (anomalib-style), and the routes that say which
conventions each benchmark is read from (:data:`ROUTES`, :func:`open_layout`)."""

from .base import BenchmarkLayout, Sample
from .bmad import BMADFolders
from .folders import ClassFolders, StateFolders
from .jsonl import JSONL, JSONLines
from .labelled import DAGMKaggle, KaggleHeadCT, KolektorParts, YesNoFolders
from .paired import ImageMaskFolders
from .routing import ROUTES, LayoutNotFoundError, list_benchmarks, open_layout
from .visa import VisADataTree, VisASplitTable

__all__ = [
    "JSONL",
    "ROUTES",
    "BMADFolders",
    "BenchmarkLayout",
    "ClassFolders",
    "DAGMKaggle",
    "ImageMaskFolders",
    "JSONLines",
    "KaggleHeadCT",
    "KolektorParts",
    "LayoutNotFoundError",
    "Sample",
    "StateFolders",
    "VisADataTree",
    "VisASplitTable",
    "YesNoFolders",
    "list_benchmarks",
    "open_layout",
]
