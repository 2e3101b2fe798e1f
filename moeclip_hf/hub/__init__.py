"""MoECLIP on the Hugging Face Hub: the exported repository folder, its remote code, card and handler."""

from .export import export_model, push_to_hub
from .model_card import load_results, render_model_card

__all__ = ["export_model", "load_results", "push_to_hub", "render_model_card"]
