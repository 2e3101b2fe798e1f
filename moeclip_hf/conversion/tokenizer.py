"""CLIP's tokenizer, from the Hub or from the BPE file that OpenAI's and open_clip's code ship.

OpenAI's CLIP and open_clip tokenize with `bpe_simple_vocab_16e6.txt.gz`: a header line, then BPE merges, one
pair a line. Their vocabulary is the 256 byte symbols of the byte-to-unicode table, the same 256 with the
word-end marker `</w>`, the first 49152 - 256 - 2 = 48894 merges joined, then `<|startoftext|>` and
`<|endoftext|>`: 49408 tokens. `clip_tokenizer_from_bpe` builds a transformers `CLIPTokenizer` from that file
exactly so; it holds the same vocabulary and merges as the Hub's `openai/clip-vit-*` tokenizers.

The file sits in the released MoECLIP code's checkout (its copy of open_clip) and in the `open_clip_torch`
package; `find_open_clip_bpe` locates the package's copy without importing it (open_clip imports torchvision).
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
#: The tokenizer a converted ViT-L/14-336 model uses when none is given (found when online or cached).
DEFAULT_TOKENIZER = "openai/clip-vit-large-patch14-336"
#: The BPE file's name in OpenAI's and open_clip's code.
BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
#: How many of the file's merges OpenAI's tokenizer uses: 49152 tokens less the 256 byte symbols and 2 specials.
MERGES_USED = 49152 - 256 - 2
#: CLIP's text context length.
CONTEXT_LENGTH = 77


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """CLIP's (GPT-2's) reversible map from bytes to printable unicode characters, printable bytes first."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in characters)))


def clip_vocabulary(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary over `merges`: byte symbols, byte symbols + `</w>`, joined merges, then the two specials."""
    symbols = list(byte_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(merge) for merge in merges] + [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> CLIPTokenizer:
    """A `CLIPTokenizer` with CLIP's special tokens (padding with `<|endoftext|>`) and context length."""
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=CONTEXT_LENGTH,
    )


def read_bpe_merges(path: str | Path) -> list[tuple[str, str]]:
    """The merges OpenAI's tokenizer uses from a BPE file (gzip-compressed or plain): lines 2 to 48895."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read as a CLIP BPE file ({error}).") from error
    lines = text.split("\n")[1 : MERGES_USED + 1]
    merges = [tuple(line.split()) for line in lines if line]
    malformed = [index + 2 for index, merge in enumerate(merges) if len(merge) != 2]
    if not merges or malformed:
        where = f"lines {malformed[:5]} are not pairs" if malformed else "it holds no merges"
        raise ValueError(f"{path} is not a CLIP BPE file ('#version' header, then one merge pair a line): {where}.")
    return merges


def clip_tokenizer_from_bpe(path: str | Path) -> CLIPTokenizer:
    """CLIP's tokenizer built from a BPE file such as `bpe_simple_vocab_16e6.txt.gz`, as OpenAI's code builds it."""
    merges = read_bpe_merges(path)
    return clip_tokenizer(clip_vocabulary(merges), merges)


def find_open_clip_bpe() -> Path | None:
    """The BPE file inside an installed `open_clip_torch` package, located without importing it; None if absent."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BPE_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_clip_tokenizer(source: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer named by `source`: a CLIP BPE file (`.txt.gz` / `.txt`), a tokenizer folder or a Hub id.

    Without `source`: `DEFAULT_TOKENIZER` from the Hub (or its cache); offline and uncached, the BPE file of an
    installed `open_clip_torch`. Raises a `ValueError` saying what to pass when none of these is available.
    """
    if source is not None:
        path = Path(source)
        if path.is_file():
            return clip_tokenizer_from_bpe(path)
        try:
            return AutoTokenizer.from_pretrained(str(source))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Cannot load the tokenizer {source!r} ({error}). Pass a CLIP BPE file ({BPE_FILE_NAME}, in the "
                "released code's open_clip folder), a tokenizer folder, or a Hub id."
            ) from error
    try:
        return AutoTokenizer.from_pretrained(DEFAULT_TOKENIZER)
    except (OSError, ValueError) as error:
        bpe = find_open_clip_bpe()
        if bpe is not None:
            return clip_tokenizer_from_bpe(bpe)
        raise ValueError(
            f"No tokenizer was given and {DEFAULT_TOKENIZER} cannot be loaded (offline?): pass --tokenizer with CLIP's "
            f"BPE file ({BPE_FILE_NAME}, in the released code's open_clip folder), a tokenizer folder, or a Hub id."
        ) from error


__all__ = [
    "BOS_TOKEN",
    "BPE_FILE_NAME",
    "DEFAULT_TOKENIZER",
    "EOS_TOKEN",
    "MERGES_USED",
    "byte_to_unicode",
    "clip_tokenizer",
    "clip_tokenizer_from_bpe",
    "clip_vocabulary",
    "find_open_clip_bpe",
    "load_clip_tokenizer",
    "read_bpe_merges",
]
