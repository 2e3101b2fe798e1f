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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Surface = tuple[np.ndarray, np.ndarray]  # (H, W, 3) float RGB in [0, 1], (H, W) bool foreground

#: Colours shared by all categories; every one appears in some category's normal images.
PALETTE: dict[str, tuple[float, float, float]] = {
    "ivory": (0.93, 0.90, 0.82),
    "charcoal": (0.18, 0.18, 0.20),
    "sand": (0.80, 0.70, 0.50),
    "navy": (0.15, 0.22, 0.45),
    "slate": (0.45, 0.50, 0.56),
    "olive": (0.45, 0.48, 0.20),
    "ochre": (0.80, 0.58, 0.15),
    "teal": (0.12, 0.50, 0.50),
    "rust": (0.66, 0.30, 0.16),
    "brick": (0.55, 0.18, 0.15),
}

#: Category -> its palette colours (surface colours for textures; object first, then background).
CATEGORY_COLORS: dict[str, tuple[str, ...]] = {
    "stripes": ("sand", "navy"),
    "checkers": ("ivory", "slate"),
    "marble": ("ivory", "charcoal"),
    "weave": ("olive", "ochre"),
    "tablet": ("ivory", "teal"),
    "washer": ("slate", "sand"),
    "pebbles": ("rust", "brick", "charcoal"),
    "hex_nut": ("ochre", "navy"),
}

TEXTURES: tuple[str, ...] = ("stripes", "checkers", "marble", "weave")
OBJECTS: tuple[str, ...] = ("tablet", "washer", "pebbles", "hex_nut")
CATEGORIES: tuple[str, ...] = TEXTURES + OBJECTS
DEFECTS: tuple[str, ...] = ("scratch", "hole", "color_spot", "perlin_patch")

#: The default split of :func:`generate_splits`: textures and objects on both sides.
DEFAULT_SEEN: tuple[str, ...] = ("stripes", "marble", "tablet", "pebbles")
DEFAULT_UNSEEN: tuple[str, ...] = ("checkers", "weave", "washer", "hex_nut")

_NOISE_SIGMA = 0.012
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
    surface, foreground = _DRAWERS[category](rng, image_size, _jittered_colors(rng, category))
    camera = _camera(rng, image_size)
    normal = _finish(surface, camera)
    if defect is None:
        return SyntheticSample(category, None, normal, normal, np.zeros(normal.shape[:2], dtype=bool))
    minimum = max(8, image_size * image_size // 400)
    for _ in range(_MAX_ATTEMPTS):
        region, damaged = _DEFECT_PAINTERS[defect](rng, surface, foreground, category)
        image = np.where(region[..., None], _finish(damaged, camera), normal)
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


# Drawing helpers. Coordinates are in units of the image side, so every size draws the same scene.


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="xy")


def _perlin(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Gradient (Perlin) noise on a `cells` x `cells` lattice, values roughly in [-0.7, 0.7]."""
    angles = rng.uniform(0.0, 2.0 * np.pi, (cells + 1, cells + 1))
    gradients = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    coords = np.arange(size) * (cells / size)
    lattice = np.floor(coords).astype(int)
    frac = coords - lattice
    y0, x0 = lattice[:, None], lattice[None, :]
    fy, fx = frac[:, None], frac[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        gradient = gradients[y0 + dy, x0 + dx]
        return gradient[..., 0] * (fx - dx) + gradient[..., 1] * (fy - dy)

    u, v = (6 * t**5 - 15 * t**4 + 10 * t**3 for t in (fx, fy))
    top = corner(0, 0) + u * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + u * (corner(1, 1) - corner(1, 0))
    return top + v * (bottom - top)


def _fractal(rng: np.random.Generator, size: int, cells: int, octaves: int = 4) -> np.ndarray:
    return sum(0.5**octave * _perlin(rng, size, cells * 2**octave) for octave in range(octaves))


def _jittered_colors(rng: np.random.Generator, category: str) -> list[np.ndarray]:
    """The category's colours, each channel jittered by up to 6 %: normal images vary too."""
    return [
        np.clip(np.array(PALETTE[name]) * rng.uniform(0.94, 1.06, 3), 0.0, 1.0) for name in CATEGORY_COLORS[category]
    ]


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def _camera(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """What the camera adds: a smooth illumination gain (0.9..1.1, gentle gradient) and sensor noise."""
    x, y = _grid(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    gradient = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
    gain = rng.uniform(0.9, 1.1) * (1.0 + rng.uniform(0.0, 0.12) * gradient)
    return gain[..., None], rng.normal(0.0, _NOISE_SIGMA, (size, size, 3))


def _finish(surface: np.ndarray, camera: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    gain, noise = camera
    return np.round(np.clip(surface * gain + noise, 0.0, 1.0) * 255.0).astype(np.uint8)


def _rotated(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = x - cx, y - cy
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


def _stripes(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    u, _ = _rotated(x, y, 0.5, 0.5, rng.uniform(0.0, np.pi))
    wave = np.sin(2.0 * np.pi * u / rng.uniform(0.08, 0.14) + rng.uniform(0.0, 2.0 * np.pi))
    return _mix(colors[0], colors[1], np.clip(0.5 + 1.5 * wave, 0.0, 1.0)), np.ones((size, size), bool)


def _checkers(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    u, v = _rotated(x, y, rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(-0.26, 0.26))
    cell = rng.uniform(0.1, 0.16)
    parity = (np.floor(u / cell) + np.floor(v / cell)) % 2
    return _mix(colors[0], colors[1], parity), np.ones((size, size), bool)


def _marble(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    u, _ = _rotated(x, y, 0.5, 0.5, rng.uniform(0.0, np.pi))
    turbulence = _fractal(rng, size, cells=2)
    veins = (0.5 + 0.5 * np.sin(2.0 * np.pi * (rng.uniform(1.5, 3.0) * u + 1.5 * turbulence))) ** 6
    return _mix(colors[0], colors[1], 0.85 * veins), np.ones((size, size), bool)


def _weave(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    u, v = _rotated(x, y, 0.5, 0.5, rng.uniform(-0.2, 0.2))
    pitch = rng.uniform(0.07, 0.11)
    warp_on_top = (np.floor(u / pitch) + np.floor(v / pitch)) % 2 == 0
    across = np.where(warp_on_top, u, v) / pitch
    along = np.where(warp_on_top, v, u) / pitch
    thread = np.sin(np.pi * (across % 1.0)) * (0.75 + 0.25 * np.sin(np.pi * (along % 1.0)))
    return _mix(colors[1], colors[0], np.where(warp_on_top, thread, 0.6 * thread)), np.ones((size, size), bool)


def _on_background(rng: np.random.Generator, body: np.ndarray, pixels: np.ndarray, color: np.ndarray) -> Surface:
    """Put an object (`pixels` where `body`) on a mottled background, with its cast shadow."""
    size = body.shape[0]
    ground = color * (1.0 + 0.08 * _fractal(rng, size, cells=3, octaves=2))[..., None]
    offset = max(1, round(size * rng.uniform(0.02, 0.04)))
    shadow = np.zeros_like(body)
    shadow[offset:, offset:] = body[:-offset, :-offset]
    ground = ground * np.where(shadow, rng.uniform(0.35, 0.5), 1.0)[..., None]
    return np.where(body[..., None], pixels, ground), body


def _shade(x: np.ndarray, y: np.ndarray, cx: float, cy: float, radius: float) -> np.ndarray:
    """Light from the top left: brighter on that side of a body of `radius`, darker opposite."""
    towards_light = ((cx - x) + (cy - y)) / (np.sqrt(2.0) * radius)
    return np.clip(1.0 + 0.2 * towards_light, 0.7, 1.25)


def _tablet(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    cx, cy, angle = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56), rng.uniform(0.0, np.pi)
    a, b = rng.uniform(0.28, 0.34), rng.uniform(0.16, 0.20)
    u, v = _rotated(x, y, cx, cy, angle)
    body = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    groove = np.abs(u) < 0.012
    tablet = colors[0] * (_shade(x, y, cx, cy, a) * np.where(groove, 0.8, 1.0))[..., None]
    return _on_background(rng, body, tablet, colors[1])


def _washer(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    cx, cy = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56)
    outer, inner = rng.uniform(0.30, 0.36), rng.uniform(0.12, 0.16)
    radius = np.hypot(x - cx, y - cy)
    body = (radius <= outer) & (radius >= inner)
    bevel = 1.0 - 0.3 * np.abs((radius - (outer + inner) / 2) / ((outer - inner) / 2)) ** 4
    washer = colors[0] * (_shade(x, y, cx, cy, outer) * bevel)[..., None]
    return _on_background(rng, body, washer, colors[1])


def _pebbles(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    image = np.zeros((size, size, 3))
    body = np.zeros((size, size), bool)
    for _ in range(rng.integers(4, 7)):
        cx, cy, angle = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.0, np.pi)
        a, b = rng.uniform(0.08, 0.14), rng.uniform(0.06, 0.10)
        u, v = _rotated(x, y, cx, cy, angle)
        pebble = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        color = colors[0] + (colors[1] - colors[0]) * rng.uniform(0.0, 1.0)
        image = np.where(pebble[..., None], color * _shade(x, y, cx, cy, a)[..., None], image)
        body |= pebble
    return _on_background(rng, body, image, colors[2])


def _hex_nut(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = _grid(size)
    cx, cy, angle = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56), rng.uniform(0.0, np.pi / 3)
    apothem, hole = rng.uniform(0.28, 0.33), rng.uniform(0.10, 0.13)
    faces = np.stack([_rotated(x, y, cx, cy, angle + k * np.pi / 3)[0] for k in range(3)])
    radius = np.hypot(x - cx, y - cy)
    body = (np.abs(faces).max(axis=0) <= apothem) & (radius >= hole)
    thread = np.where(radius < hole * 1.35, 0.8 + 0.1 * np.sin(radius * 2.0 * np.pi / 0.012), 1.0)
    nut = colors[0] * (_shade(x, y, cx, cy, apothem) * thread)[..., None]
    return _on_background(rng, body, nut, colors[1])


_DRAWERS: dict[str, Callable[[np.random.Generator, int, list[np.ndarray]], Surface]] = {
    "stripes": _stripes,
    "checkers": _checkers,
    "marble": _marble,
    "weave": _weave,
    "tablet": _tablet,
    "washer": _washer,
    "pebbles": _pebbles,
    "hex_nut": _hex_nut,
}


# Defects: each returns (region, damaged surface); the caller keeps the damaged pixels in `region`.


def _anchor(rng: np.random.Generator, foreground: np.ndarray) -> tuple[float, float]:
    """A random point on the object (anywhere on a texture), in units of the side."""
    rows, cols = np.nonzero(foreground)
    pick = rng.integers(rows.size)
    size = foreground.shape[0]
    return (cols[pick] + 0.5) / size, (rows[pick] + 0.5) / size


def _luminance(surface: np.ndarray) -> np.ndarray:
    return surface @ np.array([0.299, 0.587, 0.114])


def _blob(rng: np.random.Generator, size: int, center: tuple[float, float], radius: float) -> np.ndarray:
    """An irregular, slightly elongated disc: the outline of a pit or a stain."""
    x, y = _grid(size)
    u, v = _rotated(x, y, *center, rng.uniform(0.0, np.pi))
    u = u / rng.uniform(0.7, 1.0)
    phi = np.arctan2(v, u)
    wobble = 1.0 + sum(rng.uniform(0.05, 0.15) * np.sin(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    return np.hypot(u, v) <= radius * wobble


def _scratch(rng: np.random.Generator, surface: np.ndarray, foreground: np.ndarray, category: str) -> Surface:
    size = surface.shape[0]
    turn = rng.uniform(0.0, 2.0 * np.pi) + rng.uniform(-1.5, 1.5) * np.linspace(0.0, 1.0, 96)
    steps = np.stack([np.cos(turn), np.sin(turn)], axis=-1) * (rng.uniform(0.25, 0.5) / 95)
    points = (np.array(_anchor(rng, foreground)) + np.cumsum(steps, axis=0) - steps[0]) * size
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    distance = np.full((size, size), np.inf)
    for px, py in points:
        np.minimum(distance, np.hypot(cols - px, rows - py), out=distance)
    region = (distance <= rng.uniform(0.6, 1.3)) & foreground
    on_bright_surface = region.any() and _luminance(surface)[region].mean() > 0.45
    if on_bright_surface:
        return region, surface * rng.uniform(0.35, 0.55)
    return region, surface + (1.0 - surface) * rng.uniform(0.45, 0.65)


def _hole(rng: np.random.Generator, surface: np.ndarray, foreground: np.ndarray, category: str) -> Surface:
    size = surface.shape[0]
    center = _anchor(rng, foreground)
    region = _blob(rng, size, center, rng.uniform(0.04, 0.09)) & foreground
    x, y = _grid(size)
    rim_shadow = np.clip(0.8 + 3.0 * ((x - center[0]) + (y - center[1])), 0.6, 1.0)
    return region, surface * (rng.uniform(0.3, 0.5) * rim_shadow)[..., None]


def _color_spot(rng: np.random.Generator, surface: np.ndarray, foreground: np.ndarray, category: str) -> Surface:
    size = surface.shape[0]
    region = _blob(rng, size, _anchor(rng, foreground), rng.uniform(0.05, 0.11)) & foreground
    others = [name for name in PALETTE if name not in CATEGORY_COLORS[category]]
    stain = np.array(PALETTE[others[rng.integers(len(others))]])
    luminance = _luminance(surface)
    texture = luminance / max(float(luminance[region].mean()), 1e-3) if region.any() else luminance
    tinted = np.clip(stain * texture[..., None], 0.0, 1.0)
    return region, _mix(surface, tinted, np.full((size, size), rng.uniform(0.6, 0.85)))


def _perlin_patch(rng: np.random.Generator, surface: np.ndarray, foreground: np.ndarray, category: str) -> Surface:
    size = surface.shape[0]
    center = _anchor(rng, foreground)
    x, y = _grid(size)
    window = np.hypot(x - center[0], y - center[1]) <= rng.uniform(0.12, 0.22)
    region = (_perlin(rng, size, int(rng.integers(3, 7))) > rng.uniform(-0.05, 0.1)) & window & foreground
    donors = [name for name in TEXTURES if name != category]
    donor = donors[rng.integers(len(donors))]
    foreign, _ = _DRAWERS[donor](rng, size, _jittered_colors(rng, donor))
    keep = rng.uniform(0.15, 0.5)
    return region, surface * keep + foreign * (1.0 - keep)


_DEFECT_PAINTERS: dict[str, Callable[[np.random.Generator, np.ndarray, np.ndarray, str], Surface]] = {
    "scratch": _scratch,
    "hole": _hole,
    "color_spot": _color_spot,
    "perlin_patch": _perlin_patch,
}
