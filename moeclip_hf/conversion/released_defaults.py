"""The released `test.py` defaults (METHOD.md): MoE after encoder layers 6, 12, 18, 24 (1-based), which also feed
the heads; K = 4 experts, top-2, rank 8, alpha 16.

Kept apart from `released` (which builds models) so that `moeclip convert-released --help` shows them at once.
"""

RELEASED_MOE_LAYERS = (6, 12, 18, 24)
RELEASED_NUM_EXPERTS, RELEASED_TOP_K, RELEASED_RANK, RELEASED_LORA_ALPHA = 4, 2, 8, 16

__all__ = ["RELEASED_LORA_ALPHA", "RELEASED_MOE_LAYERS", "RELEASED_NUM_EXPERTS", "RELEASED_RANK", "RELEASED_TOP_K"]
