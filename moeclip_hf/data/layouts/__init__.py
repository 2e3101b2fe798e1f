"""One class per benchmark folder layout, and the registry that names them (anomalib-style)."""

from .base import BenchmarkLayout, Sample
from .bmad import CVC300, BMADLayout, BrainMRI, ClinicDB, ColonDB, ColonLayout, Endo, HeadCT, Kvasir, LiverCT, RetinaOCT
from .jsonl import JSONLines
from .mvtec import BTAD, RSDD, DTDSynthetic, MVTecAD, MVTecLayout
from .visa import VisA

#: Benchmark name -> layout class; the names are those of ``prompts.CLASS_DESCRIPTIONS`` plus "jsonl".
BENCHMARKS: dict[str, type[BenchmarkLayout]] = {
    layout.name: layout
    for layout in (
        MVTecAD,
        VisA,
        BTAD,
        RSDD,
        DTDSynthetic,
        BrainMRI,
        LiverCT,
        RetinaOCT,
        HeadCT,
        ColonDB,
        ClinicDB,
        CVC300,
        Kvasir,
        Endo,
        JSONLines,
    )
}

__all__ = [
    "BENCHMARKS",
    "BTAD",
    "CVC300",
    "RSDD",
    "BMADLayout",
    "BenchmarkLayout",
    "BrainMRI",
    "ClinicDB",
    "ColonDB",
    "ColonLayout",
    "DTDSynthetic",
    "Endo",
    "HeadCT",
    "JSONLines",
    "Kvasir",
    "LiverCT",
    "MVTecAD",
    "MVTecLayout",
    "RetinaOCT",
    "Sample",
    "VisA",
]
