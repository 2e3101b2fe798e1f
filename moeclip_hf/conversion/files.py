"""Reading the weight files of other code bases without running anything they contain.

Three kinds of file reach the converters:

- `.safetensors`: tensors only, read with safetensors.
- `.pt` / `.pth` / `.bin` written by `torch.save` (open_clip state dicts, the released MoECLIP checkpoints):
  read with `torch.load(weights_only=True)`, whose unpickler rebuilds tensors, containers and numbers only and
  refuses any other Python object without constructing it.
- OpenAI's CLIP files (`ViT-L-14-336px.pt`), which are TorchScript archives: read with TorchScript's own loader
  (`torch.jit.load`), which restores a serialised module, not pickled Python code.

Every failure is a `ValueError` naming the file and what was found.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

#: Suffixes read with `torch.load(weights_only=True)` (or TorchScript's loader for a TorchScript archive).
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"


def is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a TorchScript archive: a zip file holding a `code/` folder (a `torch.save` zip has none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def load_weights_file(path: str | Path) -> Any:
    """The object stored in a weight file: a dict of tensors, or what `torch.save` stored (plain containers only).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: for an unknown suffix, a damaged or truncated file, or a file holding a pickled Python object
            other than tensors and containers (refused, never constructed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        try:
            return load_file(path)
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path} cannot be read as a safetensors file ({error}); it may be truncated.") from error
    if suffix not in TORCH_SUFFIXES:
        raise ValueError(
            f"{path} has the suffix {path.suffix!r}; expected a PyTorch file ({', '.join(TORCH_SUFFIXES)}) or "
            f"{SAFETENSORS_SUFFIX}."
        )
    if is_torchscript_archive(path):
        try:
            return torch.jit.load(str(path), map_location="cpu").state_dict()
        except RuntimeError as error:
            raise ValueError(f"{path} is a TorchScript archive that TorchScript cannot load ({_first_line(error)}).") from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # the weights-only unpickler's refusal is a pickle.UnpicklingError, damage varies
        if _WEIGHTS_ONLY_REFUSAL in str(error):
            raise ValueError(
                f"{path} holds a pickled Python object besides tensors and plain containers "
                f"({_refused_object(error)}). It was refused, not run: only weights are read from foreign files "
                "(torch.load with weights_only=True). Save the state dict alone (torch.save(model.state_dict(), ...)) "
                "or as .safetensors."
            ) from error
        raise ValueError(
            f"{path} cannot be read as a PyTorch file ({_first_line(error)}); it may be truncated or not a checkpoint."
        ) from error


def tensor_dict(value: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """`value` as a dict of tensors, or a `ValueError` naming `path`, `what` it should be and what it is."""
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} should be a dict of tensors; found a {type(value).__name__}.")
    not_tensors = sorted(key for key, tensor in value.items() if not torch.is_tensor(tensor))
    if not_tensors:
        raise ValueError(f"{path}: {what} should hold tensors only; {not_tensors[:5]} are not tensors.")
    return value


#: How torch.load(weights_only=True) words its refusal of an object that is not a tensor or a plain container.
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"


def _refused_object(error: BaseException) -> str:
    """The "Unsupported global: GLOBAL module.name" line of torch's refusal, or its first line."""
    lines = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line]
    return lines[0] if lines else _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["SAFETENSORS_SUFFIX", "TORCH_SUFFIXES", "is_torchscript_archive", "load_weights_file", "tensor_dict"]
