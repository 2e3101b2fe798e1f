"""A small procedural anomaly benchmark in the MVTec-AD layout, for tests and the offline demo.

Eight categories, four textures (stripes, checkers, marble, weave) and four objects on a background
(tablet, washer, pebbles, hex_nut), enough to split into disjoint seen and unseen sets as zero-shot
training requires (METHOD.md, "Task"). Normal images vary in pose, scale, phase, colour and light;
objects cast shadows; every image carries sensor noise. Anomalies are drawn on the surface the way
real defects differ from it:

- ``scratch``: a thin curved line, darker (or, on dark surfaces, lighter) than the surface;
- ``hole``: an irregular dark pit with the surface's texture faintly visible;
- ``color_spot``: a stain tinting the surface towards a palette colour of *another* category;
- ``perlin_patch``: a Perlin-noise-shaped patch of another category's texture (as in DRAEM).

No anomaly introduces a colour of its own: every colour comes from the palette that normal images
share, or is a darker/lighter version of the surface, so a detector cannot succeed by spotting a
tell-tale colour. Masks are exact: a mask pixel is set if and only if the anomalous image differs
there from the anomaly-free image rendered from the same seed (:func:`render` returns both).
Everything is drawn with a ``numpy.random.Generator`` seeded per image, so files are byte-identical
for a seed and do not depend on which other categories are generated.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .defects import DEFECT_PAINTERS, DEFECTS
from .surfaces import DRAWERS, OBJECTS, TEXTURES, camera, finish, jittered_colors

CATEGORIES: tuple[str, ...] = TEXTURES + OBJECTS

#: The default split of :func:`generate_splits`: textures and objects on both sides.
DEFAULT_SEEN: tuple[str, ...] = ("stripes", "marble", "tablet", "pebbles")
DEFAULT_UNSEEN: tuple[str, ...] = ("checkers", "weave", "washer", "hex_nut")

_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered image with its anomaly-free twin.

    ``image`` equals ``normal`` outside ``mask`` and differs from it at every ``mask`` pixel.
    """

    category: str
    defect: str | None
    normal: np.ndarray
    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class GeneratedImage:
    """A file written by :func:`generate`; ``render(category, defect, image_size, seed)`` redraws it."""

    path: Path
    mask_path: Path | None
    category: str
    defect: str | None
    seed: tuple[int, ...]


def render(category: str, defect: str | None, image_size: int = 128, seed: int | Sequence[int] = 0) -> SyntheticSample:
    """Draw one image of `category`, with `defect` (one of :data:`DEFECTS`) or normal when None.

    The anomaly-free image depends only on `category`, `image_size` and `seed`, so
    ``render(c, d, s, k).normal == render(c, None, s, k).image`` for every defect `d`.
    """
    _check_category(category)
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; expected one of {DEFECTS}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
    rng = np.random.default_rng(seed)
    surface, foreground = DRAWERS[category](rng, image_size, jittered_colors(rng, category))
    lighting = camera(rng, image_size)
    normal = finish(surface, lighting)
    if defect is None:
        return SyntheticSample(category, None, normal, normal, np.zeros(normal.shape[:2], dtype=bool))
    minimum = max(8, image_size * image_size // 400)
    for _ in range(_MAX_ATTEMPTS):
        region, damaged = DEFECT_PAINTERS[defect](rng, surface, foreground, category)
        image = np.where(region[..., None], finish(damaged, lighting), normal)
        mask = (image != normal).any(axis=-1)
        if mask.sum() >= minimum:
            return SyntheticSample(category, defect, normal, image, mask)
    raise RuntimeError(f"could not place a {defect} on {category} for seed {seed!r}")


def generate(
    root: str | os.PathLike[str],
    categories: Sequence[str] | None = None,
    images_per_category: int = 16,
    seed: int = 0,
    image_size: int = 128,
    overwrite: bool = False,
) -> list[GeneratedImage]:
    """Write a test split in the MVTec-AD layout and return what was written.

    Each category gets ``images_per_category`` images, half of them (rounded down) anomalous,
    the defects taken in turn: ``<category>/test/good/000.png``,
    ``<category>/test/<defect>/000.png`` and ``<category>/ground_truth/<defect>/000_mask.png``
    (0/255). Load it back with ``load_benchmark("mvtec", root)``.

    Args:
        root: the output folder (created if needed).
        categories: a subset of :data:`CATEGORIES` (default all eight).
        images_per_category: at least 2, so that each category has a normal and an anomalous image.
        seed: the seed; image ``i`` of a category is ``render(..., seed=(seed, 0, crc32(category), i))``.
        image_size: the side of the square images.
        overwrite: replace existing category folders; otherwise they are refused, so that two
            runs never mix in one folder.
    """
    return _generate(Path(root), categories, images_per_category, (seed, 0), image_size, overwrite)


def generate_splits(
    root: str | os.PathLike[str],
    seen: Sequence[str] = DEFAULT_SEEN,
    unseen: Sequence[str] = DEFAULT_UNSEEN,
    images_per_category: int = 16,
    seed: int = 0,
    image_size: int = 128,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the three roots a zero-shot demo needs, each in the MVTec-AD layout.

    ``train`` and ``heldout`` hold the `seen` categories with different images (a training set and
    a check that training did not just memorise it); ``unseen`` holds the other categories, the
    zero-shot test. Returns ``{"train": path, "heldout": path, "unseen": path}``.
    """
    seen, unseen = list(seen), list(unseen)
    for name in seen + unseen:
        _check_category(name)
    if not seen or not unseen:
        raise ValueError("seen and unseen must both name at least one category")
    shared = sorted(set(seen) & set(unseen))
    if shared:
        raise ValueError(f"seen and unseen categories must be disjoint; both hold {shared}")
    roots = {name: Path(root) / name for name in ("train", "heldout", "unseen")}
    for stream, (name, categories) in enumerate((("train", seen), ("heldout", seen), ("unseen", unseen))):
        _generate(roots[name], categories, images_per_category, (seed, stream), image_size, overwrite)
    return roots


def _generate(
    root: Path,
    categories: Sequence[str] | None,
    images_per_category: int,
    key: tuple[int, int],
    image_size: int,
    overwrite: bool,
) -> list[GeneratedImage]:
    names = list(CATEGORIES if categories is None else categories)
    for name in names:
        _check_category(name)
    if not names:
        raise ValueError("categories is empty")
    if images_per_category < 2:
        raise ValueError(f"images_per_category must be at least 2, got {images_per_category}")
    for name in names:
        existing = root / name
        if existing.exists() and any(existing.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{existing} already exists; pass overwrite=True to replace it")
            shutil.rmtree(existing)
    written = []
    for name in names:
        anomalous = images_per_category // 2
        plan = [None] * (images_per_category - anomalous) + [DEFECTS[i % len(DEFECTS)] for i in range(anomalous)]
        counters: dict[str, int] = {}
        for index, defect in enumerate(plan):
            seed = (*key, zlib.crc32(name.encode()), index)
            sample = render(name, defect, image_size, seed)
            kind = defect or "good"
            number = counters[kind] = counters.get(kind, -1) + 1
            path = root / name / "test" / kind / f"{number:03d}.png"
            mask_path = None if defect is None else root / name / "ground_truth" / defect / f"{number:03d}_mask.png"
            _save(path, sample.image)
            if mask_path is not None:
                _save(mask_path, np.where(sample.mask, 255, 0).astype(np.uint8))
            written.append(GeneratedImage(path, mask_path, name, defect, seed))
    return written


def _check_category(name: str) -> None:
    if name not in CATEGORIES:
        raise ValueError(f"unknown synthetic category {name!r}; expected one of {CATEGORIES}")


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


__all__ = [
    "CATEGORIES",
    "DEFAULT_SEEN",
    "DEFAULT_UNSEEN",
    "DEFECTS",
    "OBJECTS",
    "TEXTURES",
    "GeneratedImage",
    "SyntheticSample",
    "generate",
    "generate_splits",
    "render",
]
