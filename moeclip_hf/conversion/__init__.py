"""Files of other code bases as moeclip-hf models, and back.

- `files`: reading foreign weight files without running anything in them (`torch.load(weights_only=True)`,
  TorchScript's loader, safetensors), with errors naming the file.
- `open_clip`: OpenAI / open_clip CLIP state dicts as transformers CLIP towers (`MoECLIPModel.from_open_clip`).
- `released`: the authors' released MoECLIP checkpoints, `convert_released` and `export_released`
  (`moeclip convert-released`, `moeclip export-released`).
- `tokenizer`: CLIP's tokenizer from the Hub or from its BPE file.

The attributes below are imported on first use: `files`, `open_clip` and `tokenizer` import nothing of the
package (the model and the tiny presets read with them), while `released` builds models.
"""

from .._lazy import lazy_attributes

_HOMES = {
    "convert_released": ".released",
    "export_released": ".released",
    "read_released_checkpoint": ".released",
    "clip_tokenizer_from_bpe": ".tokenizer",
    "load_clip_tokenizer": ".tokenizer",
}
__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
__all__ = sorted(_HOMES)
