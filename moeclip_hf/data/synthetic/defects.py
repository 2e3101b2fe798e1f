"""The defects of the procedural benchmark: each paints a region of a surface the way real defects differ from it.

Each painter returns (region, damaged surface); `render` keeps the damaged pixels inside the region. Every colour
comes from the shared palette or is a darker/lighter version of the surface (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .surfaces import CATEGORY_COLORS, DRAWERS, PALETTE, TEXTURES, Surface, grid, jittered_colors, mix, perlin, rotated

DEFECTS: tuple[str, ...] = ("scratch", "hole", "color_spot", "perlin_patch")


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
    x, y = grid(size)
    u, v = rotated(x, y, *center, rng.uniform(0.0, np.pi))
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
    x, y = grid(size)
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
    return region, mix(surface, tinted, np.full((size, size), rng.uniform(0.6, 0.85)))


def _perlin_patch(rng: np.random.Generator, surface: np.ndarray, foreground: np.ndarray, category: str) -> Surface:
    size = surface.shape[0]
    center = _anchor(rng, foreground)
    x, y = grid(size)
    window = np.hypot(x - center[0], y - center[1]) <= rng.uniform(0.12, 0.22)
    region = (perlin(rng, size, int(rng.integers(3, 7))) > rng.uniform(-0.05, 0.1)) & window & foreground
    donors = [name for name in TEXTURES if name != category]
    donor = donors[rng.integers(len(donors))]
    foreign, _ = DRAWERS[donor](rng, size, jittered_colors(rng, donor))
    keep = rng.uniform(0.15, 0.5)
    return region, surface * keep + foreign * (1.0 - keep)


DEFECT_PAINTERS: dict[str, Callable[[np.random.Generator, np.ndarray, np.ndarray, str], Surface]] = {
    "scratch": _scratch,
    "hole": _hole,
    "color_spot": _color_spot,
    "perlin_patch": _perlin_patch,
}


__all__ = ["DEFECTS", "DEFECT_PAINTERS"]
