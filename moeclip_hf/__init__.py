"""moeclip-hf: MoECLIP zero-shot anomaly detection for transformers, peft and accelerate.

`import moeclip_hf` is light: it loads neither torch nor any other heavy library. The public classes are
imported on first use, and that first use also registers MoECLIP with transformers (`AutoConfig`,
`AutoModel`, `AutoProcessor` and the `zero-shot-anomaly-detection` pipeline task); `moeclip_hf.register()`
registers without naming a class:

>>> import moeclip_hf
>>> moeclip_hf.register()
>>> from transformers.pipelines import PIPELINE_REGISTRY
>>> "zero-shot-anomaly-detection" in PIPELINE_REGISTRY.get_supported_tasks()
True
"""

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_HOMES = {
    "MoECLIPConfig": ".configuration.configuration_moeclip",
    "MoELoraConfig": ".configuration.configuration_moe_lora",
    "MoECLIPModel": ".modeling.modeling_moeclip",
    "MoECLIPOutput": ".modeling.outputs",
    "MoECLIPPatchFeatures": ".modeling.outputs",
    "MoECLIPPreTrainedModel": ".modeling.modeling_moeclip",
    "MoECLIPProcessor": ".modeling.processing_moeclip",
    "MoELoraModel": ".modeling.moe_lora.model",
    "ZeroShotAnomalyDetectionPipeline": ".inference.pipeline",
}


def register() -> None:
    """Register MoECLIP with transformers' Auto classes and pipeline registry (idempotent).

    See `moeclip_hf.inference.registration.register`.
    """
    importlib.import_module(".inference.registration", __name__).register()


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    register()
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*_HOMES, "__version__", "register"])


__all__ = [*sorted(_HOMES), "register"]
