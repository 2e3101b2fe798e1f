"""Files of other code bases as moeclip-hf models, and back.

- `files`: reading foreign weight files without running anything in them (`torch.load(weights_only=True)`,
  TorchScript's loader, safetensors), with errors naming the file.
- `open_clip`: OpenAI / open_clip CLIP state dicts as transformers CLIP towers (`MoECLIPModel.from_open_clip`).
- `released`: the authors' released MoECLIP checkpoints, `convert_released` and `export_released`
  (`moeclip convert-released`, `moeclip export-released`).
- `tokenizer`: CLIP's tokenizer from the Hub or from its BPE file.
"""

from .released import convert_released, export_released, read_released_checkpoint
from .tokenizer import clip_tokenizer_from_bpe, load_clip_tokenizer

__all__ = ["clip_tokenizer_from_bpe", "convert_released", "export_released", "load_clip_tokenizer", "read_released_checkpoint"]
