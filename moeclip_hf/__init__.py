"""moeclip-hf: MoECLIP zero-shot anomaly detection for transformers, peft and accelerate."""

__version__ = "0.1.0"
