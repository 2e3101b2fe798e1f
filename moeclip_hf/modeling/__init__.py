"""MoECLIP modelling: the MoE-LoRA tuner, heads, maps, losses, the model and its processor."""
