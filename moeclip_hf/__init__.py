"""moeclip-hf: MoECLIP zero-shot anomaly detection for transformers, peft and accelerate.

Importing the package registers `moeclip` with transformers' `AutoConfig`, `AutoModel` and `AutoProcessor`.
"""

from transformers import AutoConfig, AutoModel, AutoProcessor

from .configuration import MoECLIPConfig
from .modeling.modeling_moeclip import MoECLIPModel, MoECLIPOutput, MoECLIPPreTrainedModel
from .modeling.moe_lora import MoELoraConfig, MoELoraModel
from .modeling.processing_moeclip import MoECLIPProcessor
from .inference.pipeline import ZeroShotAnomalyDetectionPipeline, register_pipeline

__version__ = "0.1.0"

AutoConfig.register(MoECLIPConfig.model_type, MoECLIPConfig, exist_ok=True)
AutoModel.register(MoECLIPConfig, MoECLIPModel, exist_ok=True)
AutoProcessor.register(MoECLIPConfig, MoECLIPProcessor, exist_ok=True)
register_pipeline()

__all__ = [
    "MoECLIPConfig",
    "MoECLIPModel",
    "MoECLIPOutput",
    "MoECLIPPreTrainedModel",
    "MoECLIPProcessor",
    "MoELoraConfig",
    "MoELoraModel",
    "ZeroShotAnomalyDetectionPipeline",
]
