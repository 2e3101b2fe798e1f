"""One class per benchmark folder layout, and the registry that names them (anomalib-style)."""

from .base import BenchmarkLayout, Sample
from .bmad import CVC300, BMADLayout, BrainMRI, ClinicDB, ColonDB, ColonLayout, Endo, HeadCT, Kvasir, LiverCT, RetinaOCT
from .jsonl import JSONLines
from .mvtec import BTAD, RSDD, DTDSynthetic, MVTecAD, MVTecLayout
from .visa import VisA

#: Dataset name -> layout class: the benchmarks of ``moeclip_hf.benchmarks`` plus "jsonl", the field's
#: cross-method meta file.
BENCHMARK_LAYOUTS: dict[str, type[BenchmarkLayout]] = {
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



def list_benchmarks() -> list[str]:
    """The dataset names :func:`moeclip_hf.data.load_benchmark` accepts, sorted."""
    return sorted(BENCHMARK_LAYOUTS)


__all__ = [
    "BENCHMARK_LAYOUTS",
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
    "list_benchmarks",
]
