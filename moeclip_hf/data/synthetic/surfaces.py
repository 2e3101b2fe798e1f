"""The surfaces of the procedural benchmark: each category's normal image, before any defect.

Coordinates are in units of the image side, so every size draws the same scene. Textures fill the image;
objects sit on a mottled background and cast a shadow. `camera` and `finish` add what a camera adds
(illumination gain, sensor noise) and quantise to 8 bits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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

_NOISE_SIGMA = 0.012


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="xy")


def perlin(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
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
    return sum(0.5**octave * perlin(rng, size, cells * 2**octave) for octave in range(octaves))


def jittered_colors(rng: np.random.Generator, category: str) -> list[np.ndarray]:
    """The category's colours, each channel jittered by up to 6 %: normal images vary too."""
    return [
        np.clip(np.array(PALETTE[name]) * rng.uniform(0.94, 1.06, 3), 0.0, 1.0) for name in CATEGORY_COLORS[category]
    ]


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def camera(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """What the camera adds: a smooth illumination gain (0.9..1.1, gentle gradient) and sensor noise."""
    x, y = grid(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    gradient = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
    gain = rng.uniform(0.9, 1.1) * (1.0 + rng.uniform(0.0, 0.12) * gradient)
    return gain[..., None], rng.normal(0.0, _NOISE_SIGMA, (size, size, 3))


def finish(surface: np.ndarray, camera: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    gain, noise = camera
    return np.round(np.clip(surface * gain + noise, 0.0, 1.0) * 255.0).astype(np.uint8)


def rotated(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = x - cx, y - cy
    return dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)


def _stripes(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    u, _ = rotated(x, y, 0.5, 0.5, rng.uniform(0.0, np.pi))
    wave = np.sin(2.0 * np.pi * u / rng.uniform(0.08, 0.14) + rng.uniform(0.0, 2.0 * np.pi))
    return mix(colors[0], colors[1], np.clip(0.5 + 1.5 * wave, 0.0, 1.0)), np.ones((size, size), bool)


def _checkers(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    u, v = rotated(x, y, rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(-0.26, 0.26))
    cell = rng.uniform(0.1, 0.16)
    parity = (np.floor(u / cell) + np.floor(v / cell)) % 2
    return mix(colors[0], colors[1], parity), np.ones((size, size), bool)


def _marble(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    u, _ = rotated(x, y, 0.5, 0.5, rng.uniform(0.0, np.pi))
    turbulence = _fractal(rng, size, cells=2)
    veins = (0.5 + 0.5 * np.sin(2.0 * np.pi * (rng.uniform(1.5, 3.0) * u + 1.5 * turbulence))) ** 6
    return mix(colors[0], colors[1], 0.85 * veins), np.ones((size, size), bool)


def _weave(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    u, v = rotated(x, y, 0.5, 0.5, rng.uniform(-0.2, 0.2))
    pitch = rng.uniform(0.07, 0.11)
    warp_on_top = (np.floor(u / pitch) + np.floor(v / pitch)) % 2 == 0
    across = np.where(warp_on_top, u, v) / pitch
    along = np.where(warp_on_top, v, u) / pitch
    thread = np.sin(np.pi * (across % 1.0)) * (0.75 + 0.25 * np.sin(np.pi * (along % 1.0)))
    return mix(colors[1], colors[0], np.where(warp_on_top, thread, 0.6 * thread)), np.ones((size, size), bool)


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
    x, y = grid(size)
    cx, cy, angle = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56), rng.uniform(0.0, np.pi)
    a, b = rng.uniform(0.28, 0.34), rng.uniform(0.16, 0.20)
    u, v = rotated(x, y, cx, cy, angle)
    body = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    groove = np.abs(u) < 0.012
    tablet = colors[0] * (_shade(x, y, cx, cy, a) * np.where(groove, 0.8, 1.0))[..., None]
    return _on_background(rng, body, tablet, colors[1])


def _washer(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    cx, cy = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56)
    outer, inner = rng.uniform(0.30, 0.36), rng.uniform(0.12, 0.16)
    radius = np.hypot(x - cx, y - cy)
    body = (radius <= outer) & (radius >= inner)
    bevel = 1.0 - 0.3 * np.abs((radius - (outer + inner) / 2) / ((outer - inner) / 2)) ** 4
    washer = colors[0] * (_shade(x, y, cx, cy, outer) * bevel)[..., None]
    return _on_background(rng, body, washer, colors[1])


def _pebbles(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    image = np.zeros((size, size, 3))
    body = np.zeros((size, size), bool)
    for _ in range(rng.integers(4, 7)):
        cx, cy, angle = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.0, np.pi)
        a, b = rng.uniform(0.08, 0.14), rng.uniform(0.06, 0.10)
        u, v = rotated(x, y, cx, cy, angle)
        pebble = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        color = colors[0] + (colors[1] - colors[0]) * rng.uniform(0.0, 1.0)
        image = np.where(pebble[..., None], color * _shade(x, y, cx, cy, a)[..., None], image)
        body |= pebble
    return _on_background(rng, body, image, colors[2])


def _hex_nut(rng: np.random.Generator, size: int, colors: list[np.ndarray]) -> Surface:
    x, y = grid(size)
    cx, cy, angle = rng.uniform(0.44, 0.56), rng.uniform(0.44, 0.56), rng.uniform(0.0, np.pi / 3)
    apothem, hole = rng.uniform(0.28, 0.33), rng.uniform(0.10, 0.13)
    faces = np.stack([rotated(x, y, cx, cy, angle + k * np.pi / 3)[0] for k in range(3)])
    radius = np.hypot(x - cx, y - cy)
    body = (np.abs(faces).max(axis=0) <= apothem) & (radius >= hole)
    thread = np.where(radius < hole * 1.35, 0.8 + 0.1 * np.sin(radius * 2.0 * np.pi / 0.012), 1.0)
    nut = colors[0] * (_shade(x, y, cx, cy, apothem) * thread)[..., None]
    return _on_background(rng, body, nut, colors[1])


DRAWERS: dict[str, Callable[[np.random.Generator, int, list[np.ndarray]], Surface]] = {
    "stripes": _stripes,
    "checkers": _checkers,
    "marble": _marble,
    "weave": _weave,
    "tablet": _tablet,
    "washer": _washer,
    "pebbles": _pebbles,
    "hex_nut": _hex_nut,
}


__all__ = [
    "CATEGORY_COLORS",
    "DRAWERS",
    "OBJECTS",
    "PALETTE",
    "TEXTURES",
    "Surface",
    "camera",
    "finish",
    "grid",
    "jittered_colors",
    "mix",
    "perlin",
    "rotated",
]
