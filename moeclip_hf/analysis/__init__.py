"""What the experts do: routing maps, utilisation, inter-expert similarity and patch statistics.

The paper supports its claim of patch-specialised experts with a set of analyses (Fig. 3, 5, 9, 10, 11,
Figs. 12-15, Tab. 14); this package computes them for any MoECLIP model:

- `explain_image` (`moeclip explain`): one image's patch-selection maps per MoE layer and rank, and its anomaly
  maps per feature layer and PAA scale, as PNGs with a Markdown report and `routing_shares.json`;
- `analyze_dataset` (`moeclip analyze`): expert utilisation, the inter-expert cosine similarity and the
  low-level statistics of each expert's patches over a dataset, as PNGs, CSVs, JSON and a report;
- the pure tensor functions behind them (`moeclip_hf.analysis.routing`, `moeclip_hf.analysis.patches`).
"""

from .dataset import analyze_dataset
from .explain import component_anomaly_maps, explain_image, layer_routing_summary
from .patches import STATISTICS, patch_statistics
from .routing import (
    assignment_counts,
    average_similarity,
    expert_similarity,
    expert_utilisation,
    image_expert_similarity,
    mean_routing_weights,
    patch_routing,
    per_expert_sums,
    routing_shares,
    selection_maps,
)

__all__ = [
    "STATISTICS",
    "analyze_dataset",
    "assignment_counts",
    "average_similarity",
    "component_anomaly_maps",
    "expert_similarity",
    "expert_utilisation",
    "explain_image",
    "image_expert_similarity",
    "layer_routing_summary",
    "mean_routing_weights",
    "patch_routing",
    "patch_statistics",
    "per_expert_sums",
    "routing_shares",
    "selection_maps",
]
