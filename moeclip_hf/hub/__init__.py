"""MoECLIP on the Hugging Face Hub: the exported repository folder, its remote code, card and handler.

Modules: `model_card` (results -> the card and its model index), `remote_code` (the exported code, generated
from the package's sources), `handler` (the Inference Endpoints handler), `export` (the folder and its upload).
"""

from .._lazy import lazy_attributes

_HOMES = {
    "export_model": ".export",
    "push_to_hub": ".export",
    "load_results": ".model_card",
    "render_model_card": ".model_card",
}
__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
__all__ = sorted(_HOMES)
