"""Matplotlib figures of the routing analyses, drawn off-screen and written as PNG files.

The figures are `matplotlib.figure.Figure` objects, which draw with the Agg canvas on their own: no pyplot and no
global backend (`matplotlib.use`) is involved, so nothing here changes how a user's own plots are shown.

Each function takes plain numpy arrays, draws one figure after the paper's and saves it; none of them runs the
model. Experts are numbered from 1 in every label, as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

__all__ = [
    "save_anomaly_map_figure",
    "save_selection_figure",
    "save_similarity_figure",
    "save_statistics_figure",
    "save_utilisation_figure",
    "selection_overlay",
]

#: Colour of the selected patches in the patch-selection maps (green, as in Fig. 3).
SELECTION_COLOR = np.array([0.0, 0.85, 0.2])
_SELECTION_ALPHA = 0.55
_DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def _subplots(rows: int, cols: int, figsize: tuple[float, float], **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure with a `rows` x `cols` grid of axes (always 2-D), laid out by matplotlib's constrained layout."""
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.subplots(rows, cols, squeeze=False, **kwargs)


def _format_weight(weight: float) -> str:
    return "-" if np.isnan(weight) else f"{weight:.2f}"


def selection_overlay(image: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """The image with the selected patches tinted green.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the image as the model saw it.
        selected: ``(g, g)`` bool patch-grid mask; H and W must be multiples of g.

    Returns:
        ``(H, W, 3)`` float RGB in [0, 1].
    """
    height, width = image.shape[:2]
    rows, cols = selected.shape
    if height % rows or width % cols:
        raise ValueError(f"A {height}x{width} image does not split into a {rows}x{cols} patch grid.")
    mask = np.repeat(np.repeat(selected, height // rows, axis=0), width // cols, axis=1)[..., None]
    rgb = image.astype(np.float32) / 255.0
    return np.where(mask, (1 - _SELECTION_ALPHA) * rgb + _SELECTION_ALPHA * SELECTION_COLOR, rgb)


def save_selection_figure(
    image: np.ndarray,
    maps: np.ndarray,
    shares: np.ndarray,
    mean_weights: np.ndarray,
    layer: int,
    path: str | Path,
) -> Path:
    """Patch-selection maps of one MoE layer (Fig. 3, Figs. 12-15): one row per rank, one panel per expert.

    Args:
        image: ``(H, W, 3)`` uint8, the image as the model saw it.
        maps: ``(k, K, g, g)`` bool, where expert n is the rank-j choice.
        shares: ``(k, K)`` share of patches per panel.
        mean_weights: ``(k, K)`` mean renormalised routing weight per panel (NaN when no patch).
        layer: the 1-based encoder layer of the MoE, for the title.
        path: the PNG to write.
    """
    top_k, num_experts = maps.shape[:2]
    figure, axes = _subplots(
        top_k, num_experts, figsize=(2.4 * num_experts, 2.6 * top_k)
    )
    for rank in range(top_k):
        for expert in range(num_experts):
            axis = axes[rank, expert]
            axis.imshow(selection_overlay(image, maps[rank, expert]))
            weight = _format_weight(mean_weights[rank, expert])
            axis.set_title(f"Expert {expert + 1}: {shares[rank, expert]:.0%}\nmean weight {weight}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[rank, 0].set_ylabel(f"Top-{rank + 1}", fontsize=11)
    figure.suptitle(f"MoE layer {layer}: patch selection per expert and rank")
    return _save(figure, path)


def save_anomaly_map_figure(
    image: np.ndarray,
    maps: np.ndarray,
    final: np.ndarray,
    layers: Sequence[int],
    scales: Sequence[int],
    path: str | Path,
) -> Path:
    """Anomaly maps of every (feature layer, PAA scale) and their ensemble (Fig. 11).

    Args:
        image: ``(H, W, 3)`` uint8, the image as the model saw it.
        maps: ``(L, S, H, W)`` maps in [0, 1].
        final: ``(H, W)`` the ensemble map in [0, 1].
        layers, scales: the 1-based feature layers and the PAA window sizes, for the labels.
        path: the PNG to write.
    """
    num_layers, num_scales = maps.shape[:2]
    figure = Figure(figsize=(2.5 * (num_scales + 1) + 0.6, 2.5 * max(num_layers, 2)), layout="constrained")
    grid = figure.add_gridspec(1, 2, width_ratios=[num_scales, 1])
    left, right = grid[0].subgridspec(num_layers, num_scales), grid[1].subgridspec(2, 1)
    shown = None
    for row in range(num_layers):
        for col in range(num_scales):
            axis = figure.add_subplot(left[row, col])
            shown = _draw_map(axis, image, maps[row, col], f"layer {layers[row]}, s = {scales[col]}")
    side = [figure.add_subplot(right[0]), figure.add_subplot(right[1])]
    _draw_map(side[0], image, None, "input")
    _draw_map(side[1], image, final, "ensemble")
    figure.colorbar(shown, ax=side, shrink=0.6, label="anomaly probability")
    figure.suptitle("Anomaly maps per feature layer and PAA scale")
    return _save(figure, path)


def _draw_map(axis, image: np.ndarray, anomaly_map: np.ndarray | None, title: str):
    axis.imshow(image)
    shown = None
    if anomaly_map is not None:
        shown = axis.imshow(anomaly_map, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.5)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    return shown


def save_utilisation_figure(shares: Mapping[str, np.ndarray], layers: Sequence[int], path: str | Path) -> Path:
    """Expert utilisation as stacked bars (Fig. 9): one panel per MoE layer, one bar per group of images.

    Args:
        shares: group name (e.g. "all", or a class) -> ``(L, K)`` share of top-k assignments per expert.
        layers: the 1-based MoE layers.
        path: the PNG to write.
    """
    groups = list(shares)
    num_experts = next(iter(shares.values())).shape[1]
    colors = colormaps["tab10"](np.arange(num_experts) % 10)
    width = max(3.0, 0.6 * len(groups) + 1.5)
    figure, axes = _subplots(
        1, len(layers), figsize=(width * len(layers), 3.8), sharey=True
    )
    positions = np.arange(len(groups))
    for index, layer in enumerate(layers):
        axis = axes[0, index]
        bottom = np.zeros(len(groups))
        for expert in range(num_experts):
            values = np.array([100.0 * shares[group][index, expert] for group in groups])
            axis.bar(positions, values, bottom=bottom, color=colors[expert], label=f"Expert {expert + 1}")
            bottom += values
        crowded = len(groups) > 3
        axis.set_xticks(positions, groups, rotation=45 if crowded else 0, ha="right" if crowded else "center")
        axis.set_title(f"MoE layer {layer}")
        axis.set_ylim(0, 100)
    axes[0, 0].set_ylabel("share of top-k assignments (%)")
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle("Expert utilisation")
    return _save(figure, path)


def save_similarity_figure(matrices: np.ndarray, layers: Sequence[int], path: str | Path) -> Path:
    """Inter-expert cosine similarity heat maps (Fig. 5, Fig. 10), red +1, white 0, blue -1.

    Args:
        matrices: ``(L, K, K)`` similarity per MoE layer (NaN for pairs never seen together, drawn grey).
        layers: the 1-based MoE layers.
        path: the PNG to write.
    """
    num_layers, num_experts = matrices.shape[:2]
    size = (1.5 + (0.7 * num_experts + 0.8) * num_layers, 0.7 * num_experts + 1.4)
    figure, axes = _subplots(1, num_layers, figsize=size)
    cmap = colormaps["bwr"].with_extremes(bad="lightgrey")
    labels = [f"E{expert + 1}" for expert in range(num_experts)]
    shown = None
    for index, layer in enumerate(layers):
        axis = axes[0, index]
        shown = axis.imshow(np.ma.masked_invalid(matrices[index]), cmap=cmap, vmin=-1.0, vmax=1.0)
        _annotate(axis, matrices[index], "{:.2f}", dark=np.abs(matrices[index]) > 0.6)
        axis.set_xticks(range(num_experts), labels)
        axis.set_yticks(range(num_experts), labels)
        axis.set_title(f"MoE layer {layer}")
    figure.colorbar(shown, ax=axes[0].tolist(), shrink=0.8, label="cosine similarity")
    figure.suptitle("Inter-expert cosine similarity")
    return _save(figure, path)


def save_statistics_figure(
    means: np.ndarray, layers: Sequence[int], statistics: Sequence[str], path: str | Path
) -> Path:
    """Low-level statistics of the patches each expert wins as top-1 (Tab. 14), experts x statistics per layer.

    The statistics have different units, so each column is coloured by its own range in the panel (lowest
    expert dark, highest bright); the cells show the values themselves.

    Args:
        means: ``(L, K, C)`` per-expert means (NaN for an expert that won no patch, drawn grey).
        layers: the 1-based MoE layers.
        statistics: the C statistic names.
        path: the PNG to write.
    """
    num_layers, num_experts, num_stats = means.shape
    size = ((1.0 * num_stats + 1.6) * num_layers, 0.6 * num_experts + 1.4)
    figure, axes = _subplots(1, num_layers, figsize=size)
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    for index, layer in enumerate(layers):
        axis = axes[0, index]
        values = means[index]
        relative = _column_range(values)
        axis.imshow(np.ma.masked_invalid(relative), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        _annotate(axis, values, "{:.1f}", dark=relative < 0.5)
        axis.set_xticks(range(num_stats), statistics)
        axis.set_yticks(range(num_experts), [f"Expert {expert + 1}" for expert in range(num_experts)])
        axis.set_title(f"MoE layer {layer}")
    figure.suptitle("Top-1 patches per expert: mean low-level statistics")
    return _save(figure, path)


def _column_range(values: np.ndarray) -> np.ndarray:
    """Each column min-max scaled to [0, 1] over its defined values (0.5 for a constant column), NaN kept."""
    defined = ~np.isnan(values)
    low = np.where(defined, values, np.inf).min(axis=0)
    high = np.where(defined, values, -np.inf).max(axis=0)
    varies = high > low
    low, span = np.where(varies, low, 0.0), np.where(varies, high - low, 1.0)
    scaled = np.where(varies, (np.where(defined, values, 0.0) - low) / span, 0.5)
    return np.where(defined, scaled, np.nan)


def _annotate(axis, values: np.ndarray, template: str, dark: np.ndarray) -> None:
    """Write each value in its cell, white on the cells flagged `dark`."""
    for (row, col), value in np.ndenumerate(values):
        text = "n/a" if np.isnan(value) else template.format(value)
        color = "white" if dark[row, col] else "black"
        axis.text(col, row, text, ha="center", va="center", fontsize=8, color=color)
