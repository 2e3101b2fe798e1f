"""MoECLIPProcessor: CLIP image preprocessing plus the MoECLIP prompt ensemble, CLIPSeg-style."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BatchFeature, CLIPImageProcessorPil, ProcessorMixin

from ..benchmarks import CLASS_DESCRIPTION_SETS
from ..image_io import to_rgb
from .prompts import describe, prompt_sentences

#: CLIP's text context length; prompts are padded to the longest in a call and truncated here.
MAX_PROMPT_LENGTH = 77


def clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP preprocessing as METHOD.md fixes it: RGB, bicubic resize straight to a square, no crop, CLIP mean/std."""
    return CLIPImageProcessorPil(size={"height": image_size, "width": image_size}, do_center_crop=False)


class MoECLIPProcessor(ProcessorMixin):
    r"""Prepares images and class names for [`MoECLIPModel`].

    `processor(images=..., class_names=[...], return_tensors="pt")` returns `pixel_values` and, per image,
    the ids of its class's prompt ensemble (`prompt_input_ids`, `prompt_attention_mask` of shape
    (batch, prompts, length), the normal sentences first): what `MoECLIPModel(**inputs)` takes.

    Args:
        image_processor ([`CLIPImageProcessorPil`]): resizes to the model's square input and normalises.
        tokenizer ([`CLIPTokenizer`]): the CLIP tokenizer of the text tower.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs) -> None:
        super().__init__(image_processor, tokenizer)

    def __call__(
        self,
        images=None,
        class_names: str | Sequence[str] | None = None,
        dataset: str | None = None,
        return_tensors: str = "pt",
        class_descriptions: str = "paper",
        **kwargs,
    ) -> BatchFeature:
        """Preprocess `images` and tokenize the prompts of `class_names` (one per image, or one for all).

        Class names are turned into their benchmark description when known (`dataset` disambiguates;
        `class_descriptions` picks the "paper" or "released" wording, as the model's
        `config.class_descriptions` says), otherwise used as written; an empty name falls back to "object".
        PIL images of any mode are first converted to RGB as the data pipeline converts them
        (`moeclip_hf.image_io.to_rgb`: 16-bit
        grayscale stretched by its own range, transparency composited onto white).
        """
        if images is None and class_names is None:
            raise ValueError("MoECLIPProcessor needs `images`, `class_names`, or both.")
        data = {}
        num_images = None
        if images is not None:
            if isinstance(images, Image.Image):
                images = to_rgb(images)
            elif isinstance(images, (list, tuple)):
                images = [to_rgb(image) if isinstance(image, Image.Image) else image for image in images]
            pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
            data["pixel_values"] = pixel_values
            num_images = pixel_values.shape[0]
        if class_names is not None:
            names = [class_names] if isinstance(class_names, str) else list(class_names)
            if num_images is not None and len(names) == 1:
                names = names * num_images
            if num_images is not None and len(names) != num_images:
                raise ValueError(f"class_names has {len(names)} entries for {num_images} images: give one, or one per image.")
            data.update(self.tokenize_prompts(names, dataset, class_descriptions))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def tokenize_prompts(
        self, class_names: Sequence[str], dataset: str | None = None, class_descriptions: str = "paper"
    ) -> dict[str, torch.Tensor]:
        """Prompt ids (N, P, L) and mask for N class names; each set holds the normal then the abnormal sentences.

        Each name is first turned into its description (`prompts.describe`, `dataset` disambiguating), in the
        "paper" wording or, with `class_descriptions="released"`, the released code's.
        """
        if not class_names:
            raise ValueError("class_names is empty: give one class name, or one per image.")
        for name in class_names:
            if not isinstance(name, str):
                raise ValueError(f"class names must be strings; got {type(name).__name__}.")
        if class_descriptions not in CLASS_DESCRIPTION_SETS:
            raise ValueError(f"class_descriptions must be one of {CLASS_DESCRIPTION_SETS}; got {class_descriptions!r}.")
        released = class_descriptions == "released"
        return self.tokenize_descriptions([describe(name, dataset, released=released) for name in class_names])

    def tokenize_descriptions(self, descriptions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Prompt ids (N, P, L) and mask for N descriptions used as they are (a dataset row's `description`).

        Unlike `tokenize_prompts`, nothing is looked up: "brain" stays "brain" even though it is also the
        name of a benchmark class described as "scan".
        """
        if not descriptions:
            raise ValueError("descriptions is empty: give one description per prompt set.")
        for description in descriptions:
            if not isinstance(description, str) or not description.strip():
                raise ValueError(f"descriptions must be non-empty strings; got {description!r}.")
        sentence_sets = [self.description_sentences(description) for description in descriptions]
        flat = [sentence for sentences in sentence_sets for sentence in sentences]
        encoded = self.tokenizer(
            flat, padding=True, truncation=True, max_length=MAX_PROMPT_LENGTH, return_tensors="pt"
        )
        per_set = len(sentence_sets[0])
        return {
            "prompt_input_ids": encoded["input_ids"].reshape(len(descriptions), per_set, -1),
            "prompt_attention_mask": encoded["attention_mask"].reshape(len(descriptions), per_set, -1),
        }

    @staticmethod
    def description_sentences(description: str) -> list[str]:
        """The normal then abnormal sentences of a description (METHOD.md, "Text side")."""
        normal, abnormal = prompt_sentences(description)
        return normal + abnormal

    @property
    def image_size(self) -> int:
        return int(self.image_processor.size["height"])


__all__ = ["MAX_PROMPT_LENGTH", "MoECLIPProcessor", "clip_image_processor"]
