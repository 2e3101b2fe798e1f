"""Registering MoECLIP with transformers: `AutoConfig`, `AutoModel`, `AutoProcessor` and the pipeline task.

Registration needs the model classes, and importing a transformers model imports torch, scipy and the rest,
so `import moeclip_hf` does not do it (it stays light): `moeclip_hf.register()` does, and so does the first
use of a class through the package (`from moeclip_hf import MoECLIPModel`).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from ..configuration import MoECLIPConfig
from ..modeling.modeling_moeclip import MoECLIPModel
from ..modeling.processing_moeclip import MoECLIPProcessor
from .pipeline import ZeroShotAnomalyDetectionPipeline
from .task import TASK


def register() -> None:
    """Make `AutoConfig`/`AutoModel`/`AutoProcessor.from_pretrained` load MoECLIP folders and
    `pipeline("zero-shot-anomaly-detection", model=...)` build `ZeroShotAnomalyDetectionPipeline`. Idempotent.

    >>> from transformers import AutoConfig
    >>> register()
    >>> type(AutoConfig.for_model("moeclip")).__name__
    'MoECLIPConfig'
    """
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is ZeroShotAnomalyDetectionPipeline:
        return  # registered already (transformers would warn about overwriting the task)
    AutoConfig.register(MoECLIPConfig.model_type, MoECLIPConfig, exist_ok=True)
    AutoModel.register(MoECLIPConfig, MoECLIPModel, exist_ok=True)
    AutoProcessor.register(MoECLIPConfig, MoECLIPProcessor, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ZeroShotAnomalyDetectionPipeline, pt_model=AutoModel, type="multimodal"
    )


__all__ = ["register"]
